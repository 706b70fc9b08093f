"""The dbt models as Dagster assets, and dbt tests as asset checks."""


from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from orchestration import settings
from orchestration.assets.landing import DUCKDB_POOL
from orchestration.locking import writer_lock
from orchestration.dbt_args import dbt_build_args
from orchestration.project import dbt_project

# dbt folder → Dagster group, so the graph reads like the data flow.
GROUP_BY_FOLDER = {"staging": "staging", "intermediate": "identity", "marts": "profiles", "computed": "traits_and_audiences"}


class IdentityWarehouseTranslator(DagsterDbtTranslator):
    """Keys are ``[schema, name]``; a dbt source is the ``raw`` table the ingestion asset lands."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        folder = dbt_resource_props.get("fqn", [None, None])[1]
        return GROUP_BY_FOLDER.get(folder, "dbt")


class DbtBuildConfig(dg.Config):
    full_refresh: bool = False
    dbt_vars: dict[str, Any] = {}


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=IdentityWarehouseTranslator(),
    pool=DUCKDB_POOL,
)
def identity_warehouse_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
    """``dbt build``: the models of the selection, with their tests as asset checks."""
    with writer_lock(settings.duckdb_path(), context.log.info):  # dbt opens the file itself
        yield from dbt.cli(dbt_build_args(config.full_refresh, config.dbt_vars), context=context).stream()
