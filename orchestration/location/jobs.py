"""The main job, its schedule, and the sensor that starts it when landing files arrive."""


import os
from pathlib import Path

import dagster as dg

from orchestration.core import settings
from orchestration.landing.pending import pending_key, pending_landing_files, read_loaded_files
from orchestration.landing.sources import registered_sources

# Runs carrying this tag are queued one at a time (see dagster_home/dagster.yaml): DuckDB has one writer.
WRITER_TAG = {"identity_warehouse/duckdb_writer": "true"}

build_warehouse_job = dg.define_asset_job(
    name="build_warehouse",
    selection=dg.AssetSelection.all(),
    description="Land new files, build and test every model, reconcile the counts.",
    tags=WRITER_TAG,
    executor_def=dg.in_process_executor,
)

hourly_build_schedule = dg.ScheduleDefinition(
    name="hourly_build",
    job=build_warehouse_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


def landing_fingerprint(landing_dir: os.PathLike) -> str:
    """Changes whenever a landing file is added, removed or rewritten (path, size, mtime)."""
    return pending_key(pending_landing_files(Path(landing_dir), registered_sources(), {}))


@dg.sensor(
    job=build_warehouse_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the build when LANDING_DIR holds files the warehouse has not loaded (raw.loaded_files).",
)
def new_landing_files_sensor(context: dg.SensorEvaluationContext):
    # The warehouse's own record, not the cursor: a new DAGSTER_HOME on an up-to-date warehouse
    # starts nothing. The cursor only keeps one set of pending files from being requested twice.
    loaded = read_loaded_files(settings.duckdb_path())
    if isinstance(loaded, str):
        return dg.SkipReason(loaded)
    pending = pending_landing_files(settings.landing_dir(), registered_sources(), loaded)
    if not pending:
        return dg.SkipReason("every landing file is loaded (raw.loaded_files)")
    key = pending_key(pending)
    if key == context.cursor:
        return dg.SkipReason(f"a run was already requested for the {len(pending)} file(s) not loaded yet")
    context.update_cursor(key)
    return dg.RunRequest(run_key=key, tags=WRITER_TAG)
