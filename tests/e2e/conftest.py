"""The sample data through the real Dagster job, once per session, in three runs:

1. the landing folder as shipped in ``seeds/``;
2. the same files again (nothing may change);
3. after a late file lands (it must be picked up).

Each run's marts and raw audit tables are kept as snapshots for the tests to read.
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

from orchestration.location.project import build_folder
from orchestration.location.runner import JobOutcome, run_build_warehouse
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME, environment

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
class SampleRuns:
    landing: Path
    database: Path
    first: Run
    second: Run
    after_late_file: Run


def run_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {
        record.event_log_entry.asset_materialization.asset_key.to_user_string(): {
            key: value.value for key, value in record.event_log_entry.asset_materialization.metadata.items()}
        for record in records
    }


def dbt_log_events(run_id: str) -> set[str]:
    lines = (build_folder(run_id) / "dbt.log").read_text().splitlines()
    return {json.loads(line)["info"]["name"] for line in lines if line.startswith("{")}


def snapshot(database: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return {name: conn.execute(sql).df() for name, sql in SNAPSHOT_TABLES.items()}


@pytest.fixture(scope="session")
def sample_runs(tmp_path_factory) -> SampleRuns:
    landing = tmp_path_factory.mktemp("landing")
    shutil.copytree(SEEDS, landing, dirs_exist_ok=True)
    database = tmp_path_factory.mktemp("warehouse") / WAREHOUSE_FILE_NAME
    instance = dg.DagsterInstance.ephemeral()

    def run() -> Run:
        outcome = run_build_warehouse(instance)
        return Run(outcome, snapshot(database), run_metadata(instance, outcome.run_id), dbt_log_events(outcome.run_id))

    with environment(LANDING_DIR=landing, DUCKDB_PATH=database):
        first = run()
        second = run()
        late = landing / "events" / "late" / "intilery_s2_mobile_login.jsonl"
        late.parent.mkdir(parents=True)
        late.write_text("".join(json.dumps(m) + "\n" for m in LATE_MESSAGES))
        third = run()
    return SampleRuns(landing, database, first, second, third)
