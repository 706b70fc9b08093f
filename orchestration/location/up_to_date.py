"""Whether a run of the main job would change nothing, known without starting Dagster: what
``identity-warehouse run`` checks first, so that a run with nothing to do costs seconds.

Nothing to do when all of these hold, read on a read-only connection under the writer lock:

- the last run of the job was ``identity-warehouse run`` and finished with every step and check
  passing (``build_state.last_run``: a run from the UI, the schedule or the sensor, or a killed
  one, leaves that unknown);
- the warehouse is at the current schema version;
- no landing file is waiting (as the sensor sees it) and no privacy request file; on the Spark
  target, nothing else for the landing to do either (``spark.job.why_land``);
- the build plan builds no model: no code or var changed, nothing landed since each model's last
  build, time moved no event across the edge of a window, and every audience's export files are
  what its export would write now (``build_state.plan_build``, ``exports_up_to_date``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orchestration.core import settings
from orchestration.core.migrations import CURRENT_VERSION, schema_version
from orchestration.core.warehouse import connect
from orchestration.landing.pending import loaded_files, pending_landing_files
from orchestration.landing.sources import registered_sources
from orchestration.location import build_state
from orchestration.location.assets.exports import exports_up_to_date
from orchestration.location.project import dbt_project, prepare_manifest
from orchestration.privacy.requests import request_files
from orchestration.spark import job as spark_job


def current_as_of(dbt_vars: Mapping[str, Any]) -> datetime | None:
    """The ``as_of`` the warehouse's time-dependent models are current at, when a run with these
    dbt vars would change nothing; else None (run the job)."""
    database, landing = settings.duckdb_path(), settings.landing_dir()
    on_spark = spark_job.on_spark()  # the landing's own question covers new files, and what else it must do
    if not database.exists() or request_files(landing) or (on_spark and spark_job.why_land()):
        return None
    prepare_manifest()  # the code as it is now: a changed definition or model is a change
    manifest = json.loads(dbt_project.manifest_path.read_text())
    effective_vars = {**settings.dbt_vars(), **dbt_vars}
    with connect(database, read_only=True) as conn:
        if schema_version(conn) != CURRENT_VERSION or not build_state.last_run_finished_ok(conn):
            return None
        if not on_spark and pending_landing_files(landing, registered_sources(), loaded_files(conn)):
            return None
        plan, _ = build_state.plan_from_warehouse(conn, manifest, effective_vars, nothing_pending=True,
                                                  outputs_current=lambda: exports_up_to_date(conn))
    return plan.unchanged_since if plan.builds_nothing else None
