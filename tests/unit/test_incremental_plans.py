"""Incremental queries whose plan DuckDB gets wrong at scale. It cannot estimate how few rows a
build's change set holds (a union of filtered scans and joins), so a semi-join against it may build
its hash table over the whole large table instead: at 1 M people, profile_events' did over 15 M
identifiers (3.6 GB of buffers for 120 k changed messages). The sample is too small to flip the
plan, so these tests hold the queries to the shape measured in benchmarks/README.md."""

import re

from orchestration.core import settings


def cte_body(model_path: str, name: str) -> str:
    sql = (settings.DBT_PROJECT_DIR / model_path).read_text()
    found = re.search(rf"^{name} as \((.*?)^\),?$", sql, re.MULTILINE | re.DOTALL)
    assert found, f"{model_path} has no CTE {name}"
    return " ".join(found.group(1).split())


def test_profile_events_reads_the_identifiers_of_the_messages_it_rewrites():
    # `messages` is `changed` already joined to int_messages: DuckDB estimates it from that table
    # and builds on it, not on every identifier.
    body = cte_body("models/marts/profile_events.sql", "changed_identifiers")
    assert "where message_id in (select message_id from messages)" in body
