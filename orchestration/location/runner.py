"""Run the main job in this process, and judge its outcome (steps and error-severity checks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dagster as dg

from orchestration.computed.landed import check_definitions_before_build
from orchestration.core import settings
from orchestration.core.locking import writer_lock
from orchestration.core.warehouse import connect
from orchestration.location import build_state, recovery
from orchestration.location.project import prepare_manifest


@dataclass
class JobOutcome:
    success: bool
    run_id: str
    failed_checks: list[str] = field(default_factory=list)
    warned_checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.success and not self.failed_checks


def judge(result: dg.ExecuteInProcessResult) -> JobOutcome:
    outcome = JobOutcome(success=result.success, run_id=result.run_id)
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            outcome.failed_checks.append(name)
        else:
            outcome.warned_checks.append(name)
    return outcome


def run_build_warehouse(instance: dg.DagsterInstance | None = None, run_config: dict | None = None) -> JobOutcome:
    """Land → build → check on ``LANDING_DIR`` into ``DUCKDB_PATH``.

    With ``DAGSTER_HOME`` set the run is recorded there, so ``make ui`` shows it.
    """
    settings.quiet_telemetry()
    prepare_manifest()  # raises DefinitionError (file, line, definition) on a definition that cannot compile
    check_definitions_before_build(settings.duckdb_path())  # against the landed events; warnings said
    from orchestration.location.definitions import defs  # loads the fresh manifest

    if instance is None:
        instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("build_warehouse")
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}, **(run_config or {})}
    recovery.install()  # definitions installed it already: explicit, as this run depends on it
    # This process runs outside Dagster's run queue: the lock serialises it with other runs. The run is
    # tagged with this process from its creation, so if it is killed at any point the next run knows it
    # dead and frees what it held (orchestration/location/recovery.py, at the start of the run).
    with writer_lock(settings.duckdb_path()):
        with connect(settings.duckdb_path()) as conn:
            was_ok = build_state.last_run_finished_ok(conn)
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config,
                                        tags=recovery.owner_tags())
        outcome = judge(result)
        # A run that checked nothing (it built nothing) cannot clear an earlier run's failure.
        checked = bool(result.get_asset_check_evaluations())
        with connect(settings.duckdb_path()) as conn:
            build_state.mark_last_run(conn, outcome.ok and (was_ok or checked))
    return outcome


@dataclass
class VerifyOutcome:
    success: bool
    run_id: str
    failures: list[str] = field(default_factory=list)  # "data test <name>: ...", "check <asset>:<check>"


def run_verify_warehouse(instance: dg.DagsterInstance | None = None, dbt_vars: dict | None = None) -> VerifyOutcome:
    """The ``verify_warehouse`` job in this process (every data test over every row, and the
    reconciliation checks), under the writer lock as a build."""
    settings.quiet_telemetry()
    prepare_manifest()
    from orchestration.location.definitions import defs

    if instance is None:
        instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("verify_warehouse")
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if dbt_vars:
        run_config["ops"] = {"verify_whole_warehouse": {"config": {"dbt_vars": dbt_vars}}}
    recovery.install()
    with writer_lock(settings.duckdb_path()):
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config,
                                        tags=recovery.owner_tags())
    return VerifyOutcome(result.success, result.run_id, verification_failures(result))


def verification_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """What the verify op's failure names (its metadata ``failed``), or the error that stopped it."""
    if result.success:
        return []
    failure = result.failure_data_for_node("verify_whole_warehouse")
    user = getattr(failure, "user_failure_data", None) if failure else None
    if user is not None and "failed" in user.metadata:
        return list(user.metadata["failed"].value)
    return [failure.error.message.strip() if failure and failure.error else "the run failed (see its logs)"]
