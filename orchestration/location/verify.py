"""Whole-warehouse verification: every dbt data test over every row, and the blocking reconciliation
checks, as the ``verify_warehouse`` job (daily schedule; ``identity-warehouse verify`` runs it on
demand). A build tests only the rows it wrote (dbt_project/macros/incremental/verify_scope.sql): a violation an
earlier build let through is caught here, not by every build."""

import json
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.core import settings
from orchestration.core.dbt_args import dbt_verify_args
from orchestration.core.locking import writer_lock
from orchestration.location.assets.landing import DUCKDB_POOL
from orchestration.location.checks import RECONCILIATIONS
from orchestration.location.jobs import WRITER_TAG
from orchestration.location.project import keep_build_state, new_build_folder, without_adapter_in_process
from orchestration.location.resources import Warehouse
from orchestration.spark import job as spark_job

VERIFY_JOB = "verify_warehouse"
# dbt's statuses of a data test that did not pass (run_results.json); `warn` is a warning.
FAILED_STATUSES = {"fail", "error"}


@dataclass
class Verification:
    tests_run: int = 0
    failed_tests: list[str] = field(default_factory=list)  # "name: N failing rows" or the error
    warned_tests: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)  # "asset key:check name"

    @property
    def ok(self) -> bool:
        return not self.failed_tests and not self.failed_checks

    def failures(self) -> list[str]:
        return [f"data test {test}" for test in self.failed_tests] + [f"check {check}" for check in self.failed_checks]


def judge_test_results(run_results: dict) -> Verification:
    """What a ``dbt test`` run says (its run_results.json): the data tests that failed or erred."""
    verification = Verification()
    for result in run_results.get("results", []):
        verification.tests_run += 1
        name = result["unique_id"].split(".")[2]
        status = result.get("status")
        if status in ("fail", "warn"):
            detail = f"{result.get('failures')} failing rows"
        else:
            detail = result.get("message") or status
        if status in FAILED_STATUSES:
            verification.failed_tests.append(f"{name}: {detail}")
        elif status == "warn":
            verification.warned_tests.append(f"{name}: {detail}")
    return verification


def verify_warehouse(dbt: DbtCliResource, dbt_vars: dict[str, Any] | None = None, run_id: str | None = None,
                     log=print) -> Verification:
    """Every data test over every row (``dbt test``, ``verify_scope: all``), then the reconciliation
    checks; the writer lock held, as a build holds it (dbt opens the file for writing)."""
    target_root, target_args = spark_job.dbt_target()
    target = new_build_folder(target_root, VERIFY_JOB, run_id or "cli", settings.duckdb_path())  # pruned as build folders are
    with writer_lock(settings.duckdb_path(), log):
        with without_adapter_in_process():
            invocation = dbt.cli([*dbt_verify_args(dbt_vars), *target_args], raise_on_error=False, target_path=target)
            invocation.wait()
        try:
            run_results = json.loads((invocation.target_path / "run_results.json").read_text())
        except FileNotFoundError:  # dbt did not get as far as running tests
            run_results = {"results": [{"unique_id": "test.dbt.dbt_test", "status": "error",
                                        "message": "dbt test ended before running tests (see dbt.log)"}]}
        finally:
            keep_build_state(invocation.target_path, f"{VERIFY_JOB}-*", settings.duckdb_path())
        verification = judge_test_results(run_results)
        if not invocation.is_successful() and verification.ok:
            verification.failed_tests.append("dbt test: ended in error (see dbt.log of the run)")
        for (asset, check), reconcile in RECONCILIATIONS.items():
            passed, _ = reconcile(settings.duckdb_path())
            if not passed:
                verification.failed_checks.append(f"{asset}:{check}")
    return verification


class VerifyConfig(dg.Config):
    dbt_vars: dict[str, Any] = {}


@dg.op(
    name="verify_whole_warehouse",
    pool=DUCKDB_POOL,
    description="Every dbt data test over every row of the warehouse (a build tests only the rows it wrote), and "
                "the landing-to-marts reconciliation checks. Fails, naming them, when any does not pass.",
)
def verify_warehouse_op(context: dg.OpExecutionContext, config: VerifyConfig, dbt: DbtCliResource,
                        warehouse: Warehouse) -> None:
    verification = verify_warehouse(dbt, config.dbt_vars, context.run_id, context.log.info)
    for warned in verification.warned_tests:
        context.log.warning(f"data test {warned}")
    metadata = {"data_tests": verification.tests_run,
                "failed": dg.MetadataValue.json(verification.failures()),
                "warned": dg.MetadataValue.json(verification.warned_tests)}
    if not verification.ok:
        raise dg.Failure(description="whole-warehouse verification failed: " + "; ".join(verification.failures()),
                         metadata=metadata)
    context.log.info(f"whole-warehouse verification passed: {verification.tests_run} data tests, "
                     f"{len(RECONCILIATIONS)} reconciliation checks")


@dg.job(
    name=VERIFY_JOB,
    description="Verify the whole warehouse: every dbt data test over every row and the reconciliation checks "
                "(builds test only the rows they wrote). Daily, and `identity-warehouse verify`.",
    tags=WRITER_TAG,
    executor_def=dg.in_process_executor,
)
def verify_warehouse_job():
    verify_warehouse_op()


daily_verify_schedule = dg.ScheduleDefinition(
    name="daily_verify_warehouse",
    job=verify_warehouse_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day: a violation an earlier build let through (builds test only what they wrote) is "
                "caught here.",
)
