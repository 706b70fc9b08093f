"""The Dagster code location of identity-warehouse: everything Dagster loads is listed here."""

from __future__ import annotations

import dagster as dg
from dagster_dbt.dbt_project import using_dagster_dev

from orchestration.core import settings
from orchestration.location import recovery
from orchestration.location.project import dbt_project, dbt_resource, prepare_manifest

settings.quiet_telemetry()
recovery.install()  # a step waiting for a pool slot sleeps, and frees the slots of runs killed meanwhile
settings.duckdb_path()  # exported to dbt as an absolute path before anything runs
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
