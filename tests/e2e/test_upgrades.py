"""An older warehouse upgrades on its next run and keeps its data (orchestration/core/migrations.py).

The session's sample warehouse is copied and taken back to the shapes earlier versions built
(without the change-tracking columns, the privacy log's fingerprint, and the version table); one
run of the real job on the same landing folder must upgrade it, recompute what the old shapes could
not say, and end with the same people, ids and rows as the warehouse it was copied from.
"""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest

from orchestration.core.migrations import CURRENT_VERSION, UPGRADED_FINGERPRINT
from orchestration.location.runner import run_build_warehouse
from tests.conftest import environment
from tests.e2e.conftest import snapshot

# What a warehouse built before these columns lacked (the steps of migrations.py add them back).
OLD_SHAPES = {
    "intermediate.int_identifiers": ["rules_fingerprint", "built_at"],
    "intermediate.int_identity_edges": ["rules_fingerprint", "built_at"],
    "intermediate.int_identity_components": ["graph_component_key", "first_seen_at", "message_count", "is_junk",
                                             "rules_fingerprint", "built_at"],
    "intermediate.int_message_duplicates": ["copies_loaded_until"],
    "intermediate.int_profile_ids": ["is_junk", "changed_at", "components_built_at"],
    "marts.profiles": ["updated_at"],
    "marts.profile_identifiers": ["updated_at"],
    "marts.identity_links": ["updated_at"],
    "marts.profile_trait_sources": ["updated_at"],
    "marts.profile_events": ["loaded_at", "updated_at", "event_at_status"],
    "staging.stg_segment__tracks": ["event_at_status"],
    "staging.stg_segment__identifies": ["event_at_status"],
}
WALL_CLOCK_COLUMNS = {"updated_at", "loaded_at", "load_id", "loaded_files"}


def _downgrade(database) -> None:
    with duckdb.connect(str(database)) as conn:
        for relation, columns in OLD_SHAPES.items():
            for column in columns:
                conn.execute(f"alter table {relation} drop column {column}")
        for (group,) in conn.execute("select table_name from duckdb_tables() where schema_name = 'traits'").fetchall():
            for column in ("as_of", "updated_at", "rules_fingerprint"):
                conn.execute(f"alter table traits.{group} drop column if exists {column}")
        conn.execute("alter table privacy.requests drop column fingerprint")
        conn.execute("drop schema meta cascade")


@pytest.fixture(scope="session")
def upgraded(sample_runs, tmp_path_factory, dagster_instance):
    database = tmp_path_factory.mktemp("upgraded") / sample_runs.database.name
    for path in sample_runs.database.parent.glob(sample_runs.database.name + "*"):
        if path.suffix not in (".lock", ".wal"):
            shutil.copy(path, database.parent / path.name)
    _downgrade(database)
    with environment(LANDING_DIR=sample_runs.landing, DUCKDB_PATH=database):
        outcome = run_build_warehouse(dagster_instance)
    return outcome, database


def test_a_new_warehouse_is_created_at_the_current_version(sample_runs):
    with duckdb.connect(str(sample_runs.database), read_only=True) as conn:
        assert conn.execute("select version, description from meta.schema_version").fetchall() == [
            (CURRENT_VERSION, "created at this version")]


def test_an_older_warehouse_upgrades_on_its_next_run_and_keeps_its_data(sample_runs, upgraded):
    outcome, database = upgraded
    assert outcome.ok, outcome
    with duckdb.connect(str(database), read_only=True) as conn:
        assert [v for (v,) in conn.execute("select version from meta.schema_version order by 1").fetchall()] == list(
            range(1, CURRENT_VERSION + 1))
        # the models recomputed what the old shapes could not say
        for relation in ("intermediate.int_identifiers", "intermediate.int_identity_edges",
                         "intermediate.int_identity_components"):
            assert conn.execute(f"select count(*) from {relation} where rules_fingerprint = ? "
                                "or rules_fingerprint is null", [UPGRADED_FINGERPRINT]).fetchone()[0] == 0, relation
        for relation in ("marts.profile_events", "staging.stg_segment__tracks"):  # (other sources have no status)
            assert conn.execute(f"select count(*) from {relation} where event_at_status is null "
                                "and message_id in (select message_id from staging.stg_segment__tracks "
                                "union all select message_id from staging.stg_segment__identifies)"
                                ).fetchone()[0] == 0, relation
            assert conn.execute(f"select count(*) from {relation} where event_at_status is not null").fetchone()[0]
        assert conn.execute("select count(*) from marts.profiles where updated_at < '2000-01-01'").fetchone()[0] == 0
        assert conn.execute("select count(*) from marts.identity_links where updated_at < '2000-01-01'"
                            ).fetchone()[0] == 0
    # the same people under the same ids, the same rows
    before, after = sample_runs.after_late_file.tables, snapshot(database)
    for name in before:
        columns = [c for c in before[name].columns if c not in WALL_CLOCK_COLUMNS]
        expected = before[name][columns].astype(str).sort_values(columns).reset_index(drop=True)
        found = after[name][columns].astype(str).sort_values(columns).reset_index(drop=True)
        pd.testing.assert_frame_equal(found, expected, obj=name)
