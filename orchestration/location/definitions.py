"""The Dagster code location of identity-warehouse: everything Dagster loads is listed here.

Importing it has no side effects beyond what Dagster needs: it writes no environment variable
(telemetry is off in the Makefile and the command line; ``DUCKDB_PATH`` is resolved where dbt is
started) and reads the dbt manifest that ``prepare_manifest`` made (the command line, ``make ui``,
the tests). Only under ``dagster dev``, as dagster-dbt's ``DbtProject.prepare_if_dev`` does, or when
no manifest exists yet, is it prepared here (cached: ``dbt parse`` runs only when its sources changed).
"""

from __future__ import annotations

import dagster as dg
from dagster_dbt.dbt_project import using_dagster_dev

from orchestration.core import settings
from orchestration.location import recovery
from orchestration.location.project import dbt_project, dbt_resource, prepare_manifest

recovery.install()  # a step waiting for a pool slot sleeps, and frees the slots of runs killed meanwhile
if using_dagster_dev() or not dbt_project.manifest_path.exists():
    prepare_manifest()

from orchestration.computed.schema import load_definitions  # noqa: E402
from orchestration.location.assets.dbt import identity_warehouse_dbt_models  # noqa: E402 (needs the manifest)
from orchestration.location.assets.exports import audience_export_asset  # noqa: E402
from orchestration.location.assets.landing import ingest_landing_files  # noqa: E402
from orchestration.location.assets.privacy import process_privacy_requests  # noqa: E402
from orchestration.location.checks import (  # noqa: E402
    accepted_messages_reconcile,
    event_times_usable,
    landed_lines_reconcile,
    message_copies_agree,
    trait_property_values_conform,
)
from orchestration.location.jobs import build_warehouse_job, hourly_build_schedule, new_landing_files_sensor  # noqa: E402
from orchestration.location.resources import Warehouse  # noqa: E402
from orchestration.location.verify import daily_verify_schedule, verify_warehouse_job  # noqa: E402

computed = load_definitions(settings.DEFINITIONS_DIR / "traits.yml", settings.DEFINITIONS_DIR / "audiences.yml")

defs = dg.Definitions(
    assets=[ingest_landing_files, identity_warehouse_dbt_models, process_privacy_requests,
            *map(audience_export_asset, computed.audiences)],
    asset_checks=[landed_lines_reconcile, accepted_messages_reconcile, event_times_usable, message_copies_agree,
                  trait_property_values_conform],
    jobs=[build_warehouse_job, verify_warehouse_job],
    schedules=[hourly_build_schedule, daily_verify_schedule],
    sensors=[new_landing_files_sensor],
    resources={"dbt": dbt_resource(), "warehouse": Warehouse()},
    executor=dg.in_process_executor,
)
