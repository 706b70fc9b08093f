"""A build tests the rows it wrote; whole-warehouse verification (`identity-warehouse verify`, the
daily verify_warehouse job) tests every row (dbt_project/macros/incremental/verify_scope.sql, docs/incremental-builds.md).

Each test works on a copy of the session's sample warehouse (tests/e2e/conftest.py) and plants a
violation in it before an incremental build."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from orchestration.location.project import build_folder
from orchestration.location.runner import run_build_warehouse
from tests.conftest import environment

NEW_VISITOR = [
    {"type": "track", "messageId": "verify-new-001", "anonymousId": "verify-new-visitor", "event": "Product Viewed",
     "properties": {"sku": "verify-1"}, "timestamp": "2024-05-20T10:00:00Z", "receivedAt": "2024-05-20T10:00:01Z"},
    {"type": "identify", "messageId": "verify-new-002", "anonymousId": "verify-new-visitor",
     "userId": "verify-new-user", "traits": {"email": "verify.new@example.com"},
     "timestamp": "2024-05-20T10:05:00Z", "receivedAt": "2024-05-20T10:05:01Z"},
]


def copy_of_sample(sample_runs, tmp_path: Path) -> tuple[Path, Path]:
    """The sample's landing folder and warehouse (with its side files), copied: (landing, database)."""
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    shutil.copytree(sample_runs.landing, landing)
    shutil.copytree(sample_runs.database.parent, warehouse, ignore=shutil.ignore_patterns("*.lock"))
    return landing, warehouse / sample_runs.database.name


def land_new_visitor(landing: Path) -> None:
    new_file = landing / "events" / "verify" / "new_visitor.jsonl"
    new_file.parent.mkdir(parents=True)
    new_file.write_text("".join(json.dumps(message) + "\n" for message in NEW_VISITOR))


def test_violation_in_an_old_row_is_missed_by_the_build_and_caught_by_verification(sample_runs, tmp_path, capfd,
                                                                                  dagster_instance):
    landing, database = copy_of_sample(sample_runs, tmp_path)
    with duckdb.connect(str(database)) as conn:
        # a row written by the first build: the person of an old message loses their profile
        (planted,) = conn.execute("select message_id from marts.profile_events where resolution_status = 'resolved' "
                                  "and source = 'segment' order by message_id limit 1").fetchone()
        conn.execute("update marts.profile_events set profile_id = null where message_id = ?", [planted])
        # and an old message is lost: the reconciliation after a build reads what landed or was written since
        # it last passed
        conn.execute("delete from marts.profile_events where message_id = (select max(message_id) from "
                     "marts.profile_events where source = 'segment' and message_id <> ?)", [planted])
    land_new_visitor(landing)
    instance = dagster_instance
    with environment(LANDING_DIR=landing, DUCKDB_PATH=database):
        build = run_build_warehouse(instance)
        # by design: the build tests the rows it wrote, and the planted row is not one of them
        assert build.ok, build
        with duckdb.connect(str(database), read_only=True) as conn:
            assert conn.execute("select count(*) from marts.profile_events where message_id like 'verify-new-%'"
                                ).fetchone()[0] == 2
            assert conn.execute("select profile_id from marts.profile_events where message_id = ?",
                                [planted]).fetchone()[0] is None

        from orchestration.cli.main import main
        capfd.readouterr()
        assert main(["verify"]) == 1
        errors = capfd.readouterr().err
        assert "not_null_profile_events_profile_id" in errors, errors
        assert "ERROR: data test not_null_profile_events_profile_id: 1 failing rows" in errors
        assert "ERROR: check marts/profile_events:accepted_messages_reconcile" in errors

        # the daily schedule's job, as the Dagster daemon would start it
        from orchestration.location.definitions import defs
        from orchestration.location.runner import verification_failures

        schedule = defs.get_schedule_def("daily_verify_warehouse")
        job = defs.resolve_job_def(schedule.job_name)
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failures = verification_failures(result)
        # only the planted violations: the rest of the warehouse verifies
        assert failures == ["data test not_null_profile_events_profile_id: 1 failing rows",
                            "check marts/profile_events:accepted_messages_reconcile"], failures


def test_violation_in_a_row_the_build_wrote_fails_the_build(sample_runs, tmp_path, dagster_instance):
    """Every row a build writes carries the build's start (build_timestamp(), dbt's run_started_at)
    in its watermark column (profiles.updated_at). A row stamped later than the build's start is one
    the build tests: here a copy of an old profile, so that unique(profile_id) holds over the rows
    stamped and fails only when they are compared with the whole table."""
    landing, database = copy_of_sample(sample_runs, tmp_path)
    stamped = datetime.utcnow() + timedelta(days=1)
    with duckdb.connect(str(database)) as conn:
        (profile,) = conn.execute("select profile_id from marts.profiles order by profile_id limit 1").fetchone()
        conn.execute("insert into marts.profiles select * replace (cast(? as timestamp) as updated_at) "
                     "from marts.profiles where profile_id = ?", [stamped, profile])
    land_new_visitor(landing)
    with environment(LANDING_DIR=landing, DUCKDB_PATH=database):
        build = run_build_warehouse(dagster_instance)
    assert not build.ok
    # the dbt step fails on the test (its events do not reach the checks): dbt's own results say which
    results = json.loads((build_folder(build.run_id) / "run_results.json").read_text())["results"]
    statuses = {result["unique_id"].split(".")[2]: result["status"] for result in results}
    assert statuses["unique_profiles_profile_id"] == "fail", statuses
