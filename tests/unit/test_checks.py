"""The reconciliation of marts.profile_events with the raw tables counts what it should."""

from __future__ import annotations

import duckdb
import pytest

from orchestration.location import checks

RAW_MESSAGES = {"tracks": ["m1", "m1", "m2"], "identifies": ["m3"]}  # m1 landed twice (a redelivery)
# crm.csv landed twice: only the newer export's records are current.
CONTACT_LOADS = [("old", "contacts/crm.csv", "2024-01-01", 2), ("new", "contacts/crm.csv", "2024-02-01", 1)]
GOOD_EVENTS = [("m1", "segment"), ("m2", "segment"), ("m3", "segment"), ("contact:crm:1", "contacts")]


def _counts(events: list[tuple[str, str]]) -> dict:
    conn = duckdb.connect()
    conn.execute("create schema raw; create schema marts")
    for table in checks._MESSAGE_RAW_TABLES:
        conn.execute(f"create table raw.{table} (message_id varchar)")
        for message_id in RAW_MESSAGES.get(table, []):
            conn.execute(f"insert into raw.{table} values (?)", [message_id])
    conn.execute("create table raw.contacts (load_id varchar, file_path varchar, loaded_at timestamp)")
    for load_id, path, loaded_at, records in CONTACT_LOADS:
        conn.execute("insert into raw.contacts select ?, ?, ? from range(?)", [load_id, path, loaded_at, records])
    conn.execute("create table marts.profile_events (message_id varchar, source varchar)")
    conn.executemany("insert into marts.profile_events values (?, ?)", events)
    cursor = conn.execute(checks.PROFILE_EVENTS_RECONCILIATION_SQL)
    return dict(zip([d[0] for d in cursor.description], cursor.fetchone()))


def test_every_message_once_reconciles():
    counts = _counts(GOOD_EVENTS)
    assert counts == {"accepted_messages": 3, "accepted_contact_records": 1, "profile_events": 4, "missing": 0,
                      "unexpected": 0, "duplicated": 0, "contact_events": 1}
    assert checks.profile_events_reconciled(counts)


@pytest.mark.parametrize("events, problem", [
    (GOOD_EVENTS[1:], {"missing": 1}),
    ([*GOOD_EVENTS, ("m1", "segment")], {"duplicated": 1}),
    ([*GOOD_EVENTS, ("m9", "segment"), ("m9", "segment")], {"unexpected": 2, "duplicated": 1}),
    ([*GOOD_EVENTS, ("contact:crm:2", "contacts")], {"contact_events": 2}),
])
def test_a_missing_doubled_or_unexpected_event_fails(events, problem):
    counts = _counts(events)
    assert {name: counts[name] for name in problem} == problem
    assert not checks.profile_events_reconciled(counts)


def _events(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("create schema marts; create table marts.profile_events (message_id varchar, event_name varchar, "
                 "message_type varchar, event_at_status varchar, properties json)")
    conn.executemany("insert into marts.profile_events values (?, ?, ?, ?, ?)", rows)
    return conn


def test_unusable_event_times_are_counted_with_example_message_ids():
    conn = _events([("ok", "A", "track", "ok", None), ("b2", "A", "track", "unparsable", None),
                    ("b1", "A", "track", "unparsable", None), ("far", "A", "track", "out_of_range", None),
                    ("src", "A", "track", None, None)])  # a registered source's record: not assessed
    assert conn.execute(checks.EVENT_TIMES_SQL).fetchall() == [
        ("out_of_range", 1, ["far"]), ("unparsable", 2, ["b1", "b2"])]


def test_a_message_id_with_different_content_is_counted_and_a_plain_redelivery_is_not():
    conn = duckdb.connect()
    conn.execute("create schema raw")
    for table in ("tracks", "identifies"):
        conn.execute(f"create table raw.{table} (message_id varchar, payload json)")
    conn.executemany("insert into raw.tracks values (?, ?)", [
        ("same", '{"event": "A", "receivedAt": "2024-01-01T00:00:00Z"}'),
        ("same", '{"event": "A", "receivedAt": "2024-01-02T00:00:00Z", "context": {"library": {"name": "x"}}}'),
        # redelivered: only the arrival and what a proxy added differ
        ("changed", '{"event": "A", "properties": {"revenue": 1}}'),
        ("changed", '{"event": "A", "properties": {"revenue": 2}}'),
        ("changed", '{"event": "A", "properties": {"revenue": 2}}'),
        ("once", '{"event": "B"}'),
        ("typed", '{"type": "track"}'),
    ])
    conn.execute("""insert into raw.identifies values ('typed', '{"type": "identify"}')""")
    assert conn.execute(checks.conflicting_copies_sql(["tracks", "identifies"])).fetchone() == (
        2, 5, ["changed", "typed"])
    conn.execute("delete from raw.tracks where message_id in ('changed', 'typed')")
    assert conn.execute(checks.conflicting_copies_sql(["tracks", "identifies"])).fetchone() == (0, 0, [])


def test_trait_property_values_that_are_not_of_the_traits_type_are_counted_per_trait(tmp_path):
    import yaml

    from orchestration.computed.schema import load_definitions

    (tmp_path / "traits.yml").write_text(yaml.safe_dump({"trait_groups": {"g": {"traits": [
        {"name": "revenue", "type": "sum", "event": "Order Completed", "property": "revenue"},
        {"name": "big_orders", "type": "count", "event": "Order Completed",
         "where": {"any": [{"property": "revenue", "op": ">=", "value": 100},
                           {"property": "gift", "op": "=", "value": True}]}},
        {"name": "plan", "type": "last", "message_type": "identify", "property": "plan"},  # text: anything goes
        {"name": "orders", "type": "count", "event": "Order Completed"},
    ]}}}))
    (tmp_path / "audiences.yml").write_text(yaml.safe_dump({"audiences": {}}))
    traits = load_definitions(tmp_path / "traits.yml", tmp_path / "audiences.yml").traits
    conn = _events([
        ("o1", "Order Completed", "track", "ok", '{"revenue": 10}'),
        ("o2", "Order Completed", "track", "ok", '{"revenue": "N/A"}'),
        ("o3", "Order Completed", "track", "ok", '{"revenue": "12.5", "gift": "maybe"}'),
        ("o4", "Order Completed", "track", "ok", '{"gift": true}'),
        ("v1", "Viewed", "track", "ok", '{"revenue": "N/A"}'),  # no trait reads it
        ("i1", None, "identify", "ok", '{"plan": 3}'),
    ])
    sql, params = checks.trait_values_sql(traits)
    assert conn.execute(sql, params).fetchall() == [("big_orders", 2, ["o2", "o3"]), ("revenue", 1, ["o2"])]
    assert checks.trait_values_sql([t for t in traits if t.name in ("plan", "orders")]) is None
