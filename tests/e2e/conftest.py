"""Shared end-to-end fixtures: each builds its warehouse once per session, tests only read it.

What a fixture costs, and which to reuse, is in docs/testing.md. The ones to build on:

- ``dagster_instance``: the Dagster instance in-process builds share (dbt's unit tests then run once
  per project version and vars, not in the first build of every fixture);
- ``sample_runs``: the sample data through the real Dagster job, in three runs:

  1. the landing folder as shipped in ``seeds/``;
  2. the same files again (nothing may change);
  3. after a late file lands (it must be picked up).

  Each run's marts and raw audit tables are kept as snapshots for the tests to read (read them,
  never write to ``sample_runs.database``). ``sample_runs.copy_of_first_build(folder)`` gives a
  warehouse of your own as the first run left it (landing folder, DuckDB file, exports), to build on
  instead of building the sample again;
- ``copy_warehouse(database, folder)``: a DuckDB file copied with its name (DuckDB names the database
  after the file stem, and dbt writes that name in its manifest) and the files beside it that
  belong to it (its privacy salt).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from orchestration.core.warehouse import table_exists
from orchestration.location.project import PARTIAL_PARSE_FILE, build_folder, dbt_project
from orchestration.location.runner import JobOutcome, run_build_warehouse
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME, environment

E2E_DIR = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by mark (`-m "not e2e"`)
def pytest_collection_modifyitems(items):
    """Every test under tests/e2e/ builds warehouses: `make test-fast` (`-m "not e2e"`) leaves it out."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


SNAPSHOT_TABLES = {
    "profile_identifiers": "select * from marts.profile_identifiers order by identifier_type, identifier_value",
    "profiles": "select * exclude (traits), traits::varchar as traits from marts.profiles order by profile_id",
    "profile_events": "select * exclude (properties, traits, context), properties::varchar as properties, "
    "traits::varchar as traits from marts.profile_events order by message_id",
    "rejected_records": "select file_path, line_number, reason, detail, raw_text from raw.rejected_records "
    "order by file_path, line_number",
    "loaded_files": "select * from raw.loaded_files order by file_path",
    "raw_message_ids": " union all ".join(
        f"select message_id, '{t}' as raw_table, file_path, line_number from raw.{t}"
        for t in ["tracks", "identifies", "pages", "screens", "aliases", "groups"]
    ),
    "raw_contacts": "select * exclude (traits) from raw.contacts order by file_path, row_number",
    "raw_snowplow": "select message_id, file_path, line_number from raw.snowplow order by file_path, line_number",
    "profile_merges": "select * from marts.profile_merges order by merged_profile_id",
    "audience_members": "select * from marts.audience_members order by audience, profile_id",
}

LATE_MESSAGES = [
    # Intilery scenario 2's mobile user finally logs in on the phone: the two profiles merge.
    {"type": "identify", "messageId": "late-001", "anonymousId": "intilery-s2-mobile", "userId": "intilery-user-2",
     "timestamp": "2024-05-10T08:00:00Z", "receivedAt": "2024-05-10T08:00:01Z"},
    # An old tablet of scenario 3's user turns up with a message older than anything of theirs:
    # the profile gains an identifier but keeps its id.
    {"type": "identify", "messageId": "late-002", "anonymousId": "intilery-s3-old-tablet", "userId": "intilery-user-3",
     "timestamp": "2024-04-01T08:00:00Z", "receivedAt": "2024-05-11T08:00:00Z"},
]


@dataclass
class Run:
    outcome: JobOutcome
    tables: dict[str, pd.DataFrame]
    # materialization metadata of the run, per asset key (user string, e.g. "marts/profiles")
    metadata: dict[str, dict] = field(default_factory=dict)
    # the names of the events in the dbt build's log (read at once: old build folders are removed)
    dbt_log_events: set[str] = field(default_factory=set)

    def profile_of(self, identifier_type: str, identifier_value: str) -> str:
        identifiers = self.tables["profile_identifiers"]
        match = identifiers[(identifiers.identifier_type == identifier_type)
                            & (identifiers.identifier_value == identifier_value)]
        assert len(match) == 1, f"{identifier_type}={identifier_value} is not in profile_identifiers"
        return match.profile_id.iloc[0]

    def identifiers_of(self, profile_id: str) -> set[tuple[str, str]]:
        identifiers = self.tables["profile_identifiers"]
        rows = identifiers[identifiers.profile_id == profile_id]
        return set(zip(rows.identifier_type, rows.identifier_value))

    def profile(self, profile_id: str) -> dict:
        profiles = self.tables["profiles"]
        row = profiles[profiles.profile_id == profile_id].iloc[0].to_dict()
        row["traits"] = json.loads(row["traits"])
        return row


@dataclass
class Warehouse:
    """A landing folder, its warehouse and its export folder; ``environment()`` points a build at them."""
    landing: Path
    database: Path
    exports: Path

    def environment(self, **more):
        return environment(LANDING_DIR=self.landing, DUCKDB_PATH=self.database, EXPORT_DIR=self.exports, **more)


def copy_warehouse(database: Path, folder: Path) -> Path:
    """``database`` copied into ``folder`` under the same file name, with the files that belong to it
    (its write-ahead log if it has one, its privacy salt). Returns the copy's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in database.parent.glob(database.name + "*"):
        if path.suffix not in (".lock", ".tmp") and path.is_file():
            shutil.copy2(path, folder / path.name)
    return folder / database.name


def copy_built_warehouse(built: Warehouse, folder: Path) -> Warehouse:
    """A copy of a built ``Warehouse`` in ``folder`` (landing/, warehouse/, exports/) to build on, as
    if it had been built there: its export log names the copied export folders."""
    shutil.copytree(built.landing, folder / "landing")
    if built.exports.exists():
        shutil.copytree(built.exports, folder / "exports")
    else:
        (folder / "exports").mkdir(parents=True)
    copy = Warehouse(folder / "landing", copy_warehouse(built.database, folder / "warehouse"), folder / "exports")
    with duckdb.connect(str(copy.database)) as conn:
        if table_exists(conn, "exports", "audience_exports"):
            conn.execute("update exports.audience_exports set folder = replace(folder, ?, ?)",
                         [str(built.exports), str(copy.exports)])
    return copy


@dataclass
class SampleRuns:
    landing: Path
    database: Path
    first: Run
    second: Run
    after_late_file: Run
    first_build: Warehouse  # a copy of what the first run left, never built on: copy it again
    instance: dg.DagsterInstance  # the runs' event logs (read them only)

    def copy_of_first_build(self, folder: Path) -> Warehouse:
        """The sample as the first run built it (landing folder as shipped, warehouse, exports), in
        ``folder``: a warehouse to build on without building the sample again."""
        return copy_built_warehouse(self.first_build, folder)


def run_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {
        record.event_log_entry.asset_materialization.asset_key.to_user_string(): {
            key: value.value for key, value in record.event_log_entry.asset_materialization.metadata.items()}
        for record in records
    }


def _dbt_log(run_id: str) -> list[dict]:
    """The events of the run's dbt log; none when the run started no dbt build."""
    try:
        lines = (build_folder(run_id) / "dbt.log").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line)["info"] for line in lines if line.startswith("{")]


def dbt_log_events(run_id: str) -> set[str]:
    """The names of the events in the run's dbt log."""
    return {event["name"] for event in _dbt_log(run_id)}


def dbt_log_messages(run_id: str, prefix: str) -> list[str]:
    """The messages of the run's dbt log that start with `prefix` (a model's own log lines)."""
    return [event["msg"] for event in _dbt_log(run_id) if event["msg"].startswith(prefix)]


def snapshot(database: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return {name: conn.execute(sql).df() for name, sql in SNAPSHOT_TABLES.items()}


@pytest.fixture(scope="session")
def dagster_instance() -> dg.DagsterInstance:
    """The Dagster instance the session's in-process builds share (pass it to ``run_build_warehouse``).

    dbt's unit tests check the SQL on fixtures, not the data: a build runs them only when the
    instance has no record of them passing for this version of the project and these vars. On one
    instance they run in the session's first build of each version and set of vars (about a fifth of
    a sample build), not again in the first build of every fixture. ``sample_runs`` keeps an instance
    of its own: it checks that a first build runs them.
    """
    return dg.DagsterInstance.ephemeral()


@pytest.fixture(scope="session")
def sample_runs(tmp_path_factory) -> SampleRuns:
    landing = tmp_path_factory.mktemp("landing")
    shutil.copytree(SEEDS, landing, dirs_exist_ok=True)
    database = tmp_path_factory.mktemp("warehouse") / WAREHOUSE_FILE_NAME
    built = Warehouse(landing, database, database.parent / "exports")
    instance = dg.DagsterInstance.ephemeral()  # its own: the first build must run dbt's unit tests

    def run() -> Run:
        outcome = run_build_warehouse(instance)
        return Run(outcome, snapshot(database), run_metadata(instance, outcome.run_id), dbt_log_events(outcome.run_id))

    with built.environment():
        first = run()
        first_build = copy_built_warehouse(built, tmp_path_factory.mktemp("sample-first-build"))
        second = run()
        # The project's partial-parse file is now one dbt cannot use for this warehouse, as a build of
        # another warehouse from this checkout leaves it (in `make test`, another worker's): the third
        # build parses partially all the same, from this warehouse's own file.
        (dbt_project.project_dir / dbt_project.target_path / PARTIAL_PARSE_FILE).write_bytes(b"another warehouse's")
        late = landing / "events" / "late" / "intilery_s2_mobile_login.jsonl"
        late.parent.mkdir(parents=True)
        late.write_text("".join(json.dumps(m) + "\n" for m in LATE_MESSAGES))
        third = run()
    return SampleRuns(landing, database, first, second, third, first_build, instance)
