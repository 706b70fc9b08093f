"""Materialization metadata builders: numbers and markdown charts from summary rows."""

from datetime import datetime

import dagster as dg
import duckdb

from orchestration.location.run_metadata import (
    audience_metadata,
    identity_metadata,
    markdown_bars,
    size_distribution,
    warehouse_metadata,
)


def test_profile_sizes_fall_in_buckets():
    assert size_distribution({1: 5, 2: 3, 4: 1, 5: 1, 7: 2, 40: 1}) == [
        ("1", 5), ("2", 3), ("3", 0), ("4-5", 2), ("6-10", 2), ("11+", 1)]


def test_bars_scale_to_the_largest_value():
    table = markdown_bars([("a", 30), ("b", 15), ("c", 0), ("d", 1)], "name")
    lines = table.splitlines()
    assert lines[0] == "| name | count | |"
    assert lines[2] == "| a | 30 | `" + "█" * 30 + "` |"
    assert lines[3].count("█") == 15 and lines[4].count("█") == 0 and lines[5].count("█") == 1


COUNTS = {
    "profiles": 10, "known_profiles": 4, "links_made": 12, "merges": 2,
    "identifiers_by_type": [("email", 3), ("anonymous_id", 9)],
    "profile_sizes": [(1, 6), (3, 4)],
    "refused_by_reason": [("user_id limit 1", 2)],
    "junk_by_type": [],
}


def test_identity_assets_get_their_numbers():
    metadata = identity_metadata(COUNTS)
    profiles = metadata[dg.AssetKey(["marts", "profiles"])]
    assert (profiles["profiles"], profiles["known_profiles"], profiles["anonymous_profiles"]) == (10, 4, 6)
    assert "| 3 | 4 |" in profiles["profile_sizes"].value
    identifiers = metadata[dg.AssetKey(["marts", "profile_identifiers"])]
    assert identifiers["identifiers"] == 12 and identifiers["identifiers/email"] == 3
    assert metadata[dg.AssetKey(["marts", "identity_links"])]["links_refused"] == 2
    assert metadata[dg.AssetKey(["marts", "junk_identifiers"])]["junk_by_type"].value == "no junk identifier detected"
    assert metadata[dg.AssetKey(["marts", "profile_merges"])] == {"merges": 2}


def test_audiences_get_size_and_changes():
    metadata = audience_metadata([("buyers", 5, 2, 1)])
    assert metadata[dg.AssetKey(["audiences", "audience__buyers"])] == {"members": 5, "entered": 2, "exited": 1}
    history = metadata[dg.AssetKey(["marts", "audience_membership_history"])]
    assert "| buyers | 5 | +2 | -1 |" in history["audiences"].value and history["entered"] == 2


def test_audience_changes_count_only_this_build():
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute("create table marts.audience_members as select 'buyers' as audience, 'p1' as profile_id")
    conn.execute("""create table marts.audience_membership_history as select * from (values
        ('buyers', 'p1', 'entered', timestamp '2024-01-01'), ('buyers', 'p2', 'entered', timestamp '2024-01-01'),
        ('buyers', 'p2', 'exited', timestamp '2024-02-01')) as t(audience, profile_id, change, changed_at)""")
    key = dg.AssetKey(["audiences", "audience__buyers"])
    assert warehouse_metadata(conn, {key}, datetime(2024, 1, 15))[key] == {"members": 1, "entered": 0, "exited": 1}
    assert warehouse_metadata(conn, {key}, datetime(2024, 3, 1))[key] == {"members": 1, "entered": 0, "exited": 0}
