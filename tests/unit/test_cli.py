"""The command line's own work, without running the job."""

from __future__ import annotations

import pytest

from orchestration.cli import main as cli
from orchestration.location import runner
from orchestration.location.runner import JobOutcome


@pytest.fixture
def job_runs(monkeypatch, tmp_path):
    """The run configurations ``identity-warehouse run`` starts the job with (the job itself not run)."""
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "identity_warehouse.duckdb"))
    started = []

    def run_build_warehouse(instance=None, run_config=None):
        started.append(run_config)
        return JobOutcome(success=False, run_id="not-run")

    monkeypatch.setattr(runner, "run_build_warehouse", run_build_warehouse)
    return started


def test_run_hands_its_vars_to_the_dbt_build_on_duckdb(job_runs):
    """Before: --vars was accepted and ignored on DuckDB (an as_of there silently became now)."""
    cli.main(["run", "--verbose", "--vars", '{"as_of": "2024-06-01"}'])
    assert job_runs == [{"ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": {"as_of": "2024-06-01"}}}}}]


def test_run_takes_vars_as_yaml_as_dbt_does(job_runs):
    cli.main(["run", "--verbose", "--vars", "{as_of: 2024-06-01}"])
    assert job_runs[0]["ops"]["identity_warehouse_dbt_models"]["config"]["dbt_vars"] == {"as_of": "2024-06-01"}


def test_run_without_vars_uses_the_jobs_defaults(job_runs):
    cli.main(["run", "--verbose"])
    assert job_runs == [None]


@pytest.mark.parametrize("text", ['{"as_of": "2024-13-45"}', "{not: [yaml", '["as_of"]',
                                  '{"as_of": "x\' as timestamp); drop table marts.profiles; --"}'])
def test_run_refuses_vars_that_are_not_a_json_object_or_hold_a_bad_as_of(job_runs, capsys, text):
    assert cli.main(["run", "--verbose", "--vars", text]) == 1
    assert job_runs == []
    assert capsys.readouterr().err.startswith("ERROR: --vars:")
