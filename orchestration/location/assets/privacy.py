"""Privacy requests as a Dagster asset: after the build (so an identifier resolves to its current
profile), before the audience exports (so an erased person is in none of them)."""

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Optional

import dagster as dg

from orchestration.core import settings
from orchestration.core.migrations import upgrade
from orchestration.core.warehouse import compact, connect
from orchestration.location import build_state
from orchestration.location.assets.landing import DUCKDB_POOL
from orchestration.location.project import dbt_project
from orchestration.location.resources import Warehouse
from orchestration.privacy.requests import privacy_salt, process_requests
from orchestration.spark import job as spark_job

PRIVACY_REQUESTS_KEY = dg.AssetKey(["privacy", "requests"])


class PrivacyRequestConfig(dg.Config):
    """One request, as in a request file: ``identifier`` is ``type:value`` (e.g. ``email:dana@example.com``)."""

    action: str
    identifier: str
    requested_by: str
    request_id: Optional[str] = None


class PrivacyRequestsConfig(dg.Config):
    requests: list[PrivacyRequestConfig] = []


@dg.multi_asset(
    name="process_privacy_requests",
    group_name="privacy",
    pool=DUCKDB_POOL,
    specs=[
        dg.AssetSpec(
            PRIVACY_REQUESTS_KEY,
            description="Audit log of privacy requests (export, delete, lock, unlock): who, what, when, outcome, "
                        "rows erased; the identifier as a salted hash.",
            # After the dbt build (one step), through a model every build that builds anything writes:
            # a build with nothing new leaves the profile marts as they are and writes only what time
            # changes, or nothing (orchestration/location/build_state.py), and Dagster skips what
            # depends on an asset a run did not write: with requests waiting, a build writes the
            # time-dependent models at least, this one among them (plan_this_build). The requests
            # read marts.profile_identifiers and profile_events, current when nothing new landed.
            deps=[dg.AssetKey(["marts", "audience_membership_history"])],
            kinds={"duckdb"},
        ),
        dg.AssetSpec(["privacy", "tombstones"], description="Salted hashes of erased identifiers: their lines are "
                     "rejected at ingestion (erased_identity).", kinds={"duckdb"}),
        dg.AssetSpec(["privacy", "locks"], description="Salted hashes of locked identifiers: their lines are "
                     "rejected at ingestion (locked_identity) until unlocked.", kinds={"duckdb"}),
    ],
)
def process_privacy_requests(context: dg.AssetExecutionContext, warehouse: Warehouse, config: PrivacyRequestsConfig):
    """Processes the requests of the run configuration and of ``LANDING_DIR/privacy/``."""
    extra = [request.model_dump(exclude_none=True) for request in config.requests]
    started = time.monotonic()
    # Spark: the control database finds what to erase; Spark removes it and builds its models again
    spark_erasure = spark_job.pending_erasure() if spark_job.on_spark() else None
    with connect(warehouse.database) as conn:
        upgrade(conn, context.log.info)
        batch = process_requests(conn, warehouse.landing, extra, rules=settings.identity_rules(),
                                 salt=privacy_salt(warehouse.database), export_dir=settings.export_dir(),
                                 spark_erasure=spark_erasure)
        counts = conn.execute(
            "select (select count(*) from privacy.requests), (select count(*) from privacy.tombstones), "
            "(select count(*) from privacy.locks)").fetchone()
    seconds = {"requests": round(time.monotonic() - started, 2)}
    if spark_erasure is not None and spark_erasure.exists():
        dbt_config = context.run.run_config.get("ops", {}).get("identity_warehouse_dbt_models", {}).get("config", {})
        seconds["spark_erasure"] = round(erase_and_rebuild_on_spark(dbt_config.get("dbt_vars", {}), context.log.info), 2)
    elif batch.outcomes[("delete", "completed")] and settings.compact_after_delete():
        started = time.monotonic()
        before, after = compact(warehouse.database)  # the erased values leave the file's free blocks
        seconds["compaction"] = round(time.monotonic() - started, 2)
        context.log.info(f"compacted the warehouse after erasure: {before / 1e6:.1f} MB → {after / 1e6:.1f} MB "
                         f"in {seconds['compaction']} s")
    outcomes = {f"{action}:{outcome}": n for (action, outcome), n in sorted(batch.outcomes.items())}
    context.log.info(f"privacy requests processed in {seconds['requests']} s: {outcomes or 'none'}; "
                     f"{batch.skipped} already done"
                     + (f"; {len(batch.files_set_aside)} file(s) with invalid requests set aside in privacy/invalid/"
                        if batch.files_set_aside else ""))
    yield dg.MaterializeResult(asset_key=PRIVACY_REQUESTS_KEY, metadata={
        "dagster/row_count": counts[0], "processed": dg.MetadataValue.json(outcomes),
        "files_processed": len(batch.files_done), "files_set_aside": len(batch.files_set_aside),
        "seconds": dg.MetadataValue.json(seconds)})
    yield dg.MaterializeResult(asset_key=["privacy", "tombstones"], metadata={"dagster/row_count": counts[1]})
    yield dg.MaterializeResult(asset_key=["privacy", "locks"], metadata={"dagster/row_count": counts[2]})


def erase_and_rebuild_on_spark(dbt_vars: dict, log: Callable[[str], None]) -> float:
    """Spark removes the erased lines and builds every model again (``spark.job.erase_and_rebuild``),
    recorded in the build state as the dbt asset records its builds: the next run with nothing new
    then builds nothing. Returns the seconds it took."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    with connect(settings.duckdb_path()) as conn:  # the data's version and as_of before the build starts
        plan, version = build_state.plan_from_warehouse(conn, manifest, {**settings.dbt_vars(), **dbt_vars},
                                                        nothing_pending=False, outputs_current=lambda: False)
    seconds = spark_job.erase_and_rebuild(dbt_vars, log)  # raises unless every model was built and tested
    with connect(settings.duckdb_path()) as conn:
        build_state.record_builds(conn, plan, plan.code, version, datetime.now(timezone.utc).replace(tzinfo=None))
    return seconds
