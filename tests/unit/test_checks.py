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
    return checks.profile_events_counts(conn)


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


# --- After a build: what landed or was written since the check last passed -----------------------
OLD, SINCE, NEW = "2024-01-01", "2024-02-01", "2024-03-01"


def _warehouse(path, raw: list[tuple[str, str]], events: list[tuple[str, str, str]]) -> None:
    """raw: (message_id, loaded_at) in raw.tracks; events: (message_id, source, updated_at)."""
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema raw; create schema marts")
        for table in checks._MESSAGE_RAW_TABLES:
            conn.execute(f"create table raw.{table} (message_id varchar, payload json, loaded_at timestamp)")
        conn.executemany("insert into raw.tracks values (?, '{\"event\": \"A\"}', ?)", raw)
        conn.execute("create table raw.contacts (load_id varchar, file_path varchar, loaded_at timestamp)")
        conn.execute("create table marts.profile_events (message_id varchar, source varchar, updated_at timestamp)")
        conn.executemany("insert into marts.profile_events values (?, ?, ?)", events)


def _scoped_counts(path) -> dict:
    with duckdb.connect(str(path)) as conn:
        return checks.profile_events_counts(conn, SINCE)


def test_after_a_build_the_reconciliation_reads_what_landed_or_was_written_since_it_last_passed(tmp_path):
    # "old-lost" was lost by an earlier build: the whole verification's to find, not this build's
    raw = [("old", OLD), ("old-lost", OLD), ("new", NEW), ("old", NEW)]  # "old" redelivered since
    events = [("old", "segment", OLD), ("new", "segment", NEW)]
    _warehouse(tmp_path / "ok.duckdb", raw, events)
    counts = _scoped_counts(tmp_path / "ok.duckdb")
    assert checks.profile_events_reconciled(counts) and counts["accepted_messages"] == 2

    for name, problem, more_raw, more_events in [
        ("missing", {"missing": 1}, [("late", NEW)], []),
        ("doubled", {"duplicated": 1}, [], [("new", "segment", NEW)]),
        ("doubled-old", {"duplicated": 1}, [], [("old", "segment", OLD)]),  # an old copy of a message written now
        ("unexpected", {"unexpected": 1}, [], [("never-landed", "segment", NEW)]),
    ]:
        database = tmp_path / f"{name}.duckdb"
        _warehouse(database, raw + more_raw, events + more_events)
        counts = _scoped_counts(database)
        assert {key: counts[key] for key in problem} == problem, name
        assert not checks.profile_events_reconciled(counts), name

    with duckdb.connect(str(tmp_path / "ok.duckdb")) as conn:  # the whole warehouse finds the old loss
        assert checks.profile_events_counts(conn)["missing"] == 1


def test_the_check_records_its_pass_reads_everything_until_then_and_after_a_full_refresh(tmp_path):
    from orchestration.location import build_state

    database = tmp_path / "w.duckdb"
    _warehouse(database, [("old-lost", OLD), ("new", NEW)], [("new", "segment", NEW)])
    passed, counts = checks.reconcile_accepted_messages(database, since_last_pass=True)
    assert not passed and counts["missing"] == 1 and counts["messages_since"] == "all"  # never passed: all of it
    with duckdb.connect(str(database)) as conn:
        assert build_state.check_passed_at(conn, checks.ACCEPTED_MESSAGES_CHECK) is None  # a failure records nothing
        conn.execute("delete from raw.tracks where message_id = 'old-lost'")
    passed, counts = checks.reconcile_accepted_messages(database, since_last_pass=True)
    assert passed and counts["messages_since"] == "all"
    with duckdb.connect(str(database)) as conn:
        passed_at = build_state.check_passed_at(conn, checks.ACCEPTED_MESSAGES_CHECK)
        assert passed_at is not None
        conn.execute("insert into raw.tracks values ('lost-before', '{}', ?)", [OLD])  # older than the pass
    passed, counts = checks.reconcile_accepted_messages(database, since_last_pass=True)
    assert passed and counts["messages_since"] == str(passed_at) and counts["accepted_messages"] == 0
    assert not checks.reconcile_accepted_messages(database)[0]  # verification: every row
    with duckdb.connect(str(database)) as conn:
        build_state.forget_checks_passed(conn)  # what a --full-refresh build does first
    passed, counts = checks.reconcile_accepted_messages(database, since_last_pass=True)
    assert not passed and counts["missing"] == 1


def test_after_a_build_conflicting_copies_are_looked_for_among_the_ids_landed_since():
    conn = duckdb.connect()
    conn.execute("create schema raw")
    conn.execute("create table raw.tracks (message_id varchar, payload json, loaded_at timestamp)")
    conn.executemany("insert into raw.tracks values (?, ?, ?)", [
        ("said-before", '{"event": "A"}', OLD), ("said-before", '{"event": "B"}', OLD),
        ("changed-now", '{"event": "A"}', OLD), ("changed-now", '{"event": "C"}', NEW),
        ("redelivered", '{"event": "A"}', OLD), ("redelivered", '{"event": "A"}', NEW),
    ])
    scoped = conn.execute(checks.conflicting_copies_sql(["tracks"], scoped=True), {"since": SINCE}).fetchone()
    assert scoped == (1, 2, ["changed-now"])
    assert conn.execute(checks.conflicting_copies_sql(["tracks"])).fetchone() == (2, 4, ["changed-now", "said-before"])
