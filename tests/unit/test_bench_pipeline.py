"""A run whose step failed is no figure: the pipeline benchmark says so instead of timing it."""

from __future__ import annotations

import dagster as dg

from benchmarks.pipeline import run_failure


@dg.asset
def built() -> int:
    return 1


@dg.asset(deps=[built])
def ran_out_of_memory() -> None:
    raise RuntimeError("Out of Memory Error")  # as a dbt build that DuckDB's memory limit stopped


@dg.asset_check(asset=built)
def reconciles() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)


def test_a_run_with_a_failed_step_is_no_figure():
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([built, ran_out_of_memory], instance=instance, raise_on_error=False)
    assert run_failure(instance, result.run_id) == "steps failed: ran_out_of_memory"


def test_a_run_whose_check_failed_is_a_figure():
    # the command exits 1 for both; the check's failure is the data's, the run's times stand
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([built, reconciles], instance=instance, raise_on_error=False)
    assert not result.get_asset_check_evaluations()[0].passed
    assert run_failure(instance, result.run_id) is None
