"""The main job, its schedule, and the sensor that starts it when landing files arrive."""


import hashlib
import os
from pathlib import Path

import dagster as dg

from orchestration.core import settings
from orchestration.landing.ingestion import discover_landing_files
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
    digest = hashlib.sha256()
    for landing_file in discover_landing_files(Path(landing_dir), registered_sources()):
        stat = landing_file.path.stat()
        digest.update(f"{landing_file.relative_path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dg.sensor(
    job=build_warehouse_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the build when files appear or change in LANDING_DIR (reads only the file system).",
)
def new_landing_files_sensor(context: dg.SensorEvaluationContext):
    fingerprint = landing_fingerprint(settings.landing_dir())
    if fingerprint == context.cursor:
        return dg.SkipReason("no new landing files")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=fingerprint, tags=WRITER_TAG)
