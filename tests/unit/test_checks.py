"""The reconciliation of marts.profile_events with the raw tables counts what it should."""

from __future__ import annotations

import duckdb
import pytest

from orchestration import checks

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
