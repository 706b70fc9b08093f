"""The pipeline benchmark files each step of a real run in its stage (read from the sample's runs)."""

from __future__ import annotations

from benchmarks.pipeline import STAGES, step_stages
from tests.e2e.conftest import SampleRuns


def test_each_step_of_a_run_is_filed_in_its_stage(sample_runs: SampleRuns):
    steps = step_stages(sample_runs.instance, sample_runs.first.outcome.run_id)
    stages = {key: interval.stage for key, interval in steps.items()}
    assert set(stages.values()) <= set(STAGES)
    assert stages["ingest_landing_files"] == "ingest"
    # the reconciliation checks are their own stage, not Dagster's overhead
    checks = sorted(key for key, stage in stages.items() if stage == "checks")
    assert "raw__loaded_files_landed_lines_reconcile" in checks
    assert "marts__profile_events_accepted_messages_reconcile" in checks
    # the dbt step evaluates checks too (dbt's tests), but its models are counted from run_results
    assert stages["identity_warehouse_dbt_models"] == "Dagster and dbt overhead"
    assert [key for key, stage in stages.items() if stage == "exports"] and all(
        key.startswith("exports__") for key, stage in stages.items() if stage == "exports")
    assert all(interval.end >= interval.start for interval in steps.values())
