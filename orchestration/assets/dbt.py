"""The dbt models as Dagster assets, and dbt tests as asset checks."""


from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from datetime import datetime, timezone
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from orchestration import dbt_event_stream, settings
from orchestration.assets.landing import DUCKDB_POOL
from orchestration.locking import writer_lock
from orchestration.dbt_args import dbt_build_args
from orchestration.project import dbt_project, manifest_fingerprint, without_adapter_in_process
from orchestration.run_metadata import warehouse_metadata
from orchestration.warehouse import connect

dbt_event_stream.install()  # column metadata without a spinning thread while dbt runs

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
    # Column schema and column-level lineage on every model: computed once per version of the dbt
    # project (10-40 s: sqlglot over every model), then carried over from the last materialization.
    column_metadata: bool = True


# The dbt project version a materialization was built from (manifest_fingerprint), and the metadata
# that follows from the project alone, not from the data.
PROJECT_FINGERPRINT = "dbt_project_fingerprint"
COLUMN_METADATA = ("dagster/column_schema", "dagster/column_lineage")


def reusable_column_metadata(instance: dg.DagsterInstance, keys: set[dg.AssetKey],
                             fingerprint: str) -> dict[dg.AssetKey, dict] | None:
    """The column metadata of each asset's latest materialization, when all of them were built from
    this version of the project; else None (fetch it anew)."""
    reused = {}
    for key in keys:
        event = instance.get_latest_materialization_event(key)
        metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
        recorded = metadata.get(PROJECT_FINGERPRINT)
        if recorded is None or recorded.value != fingerprint:
            return None
        reused[key] = {name: metadata[name] for name in COLUMN_METADATA if name in metadata}
    return reused


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=IdentityWarehouseTranslator(),
    pool=DUCKDB_POOL,
)
def identity_warehouse_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
    """``dbt build``: the models of the selection, with their tests as asset checks, column metadata
    and lineage, and (identity and audience models) what the build did."""
    # DuckDB: dagster-dbt collects the whole stream before it fetches column metadata (the dbt
    # process holds the file until it ends); the summaries are read after that, then every event is
    # yielded with its metadata.
    build_started_at = datetime.now(timezone.utc).replace(tzinfo=None)  # dbt stamps history rows in UTC
    fingerprint = manifest_fingerprint()
    reused = None
    if config.column_metadata:
        reused = reusable_column_metadata(context.instance, set(context.selected_asset_keys), fingerprint)
        if reused is not None:
            context.log.info("column schema and lineage: unchanged dbt project, carried over from the last build")
    fetch_columns = config.column_metadata and reused is None
    with writer_lock(settings.duckdb_path(), context.log.info):  # dbt opens the file itself
        with nullcontext() if fetch_columns else without_adapter_in_process():
            stream = dbt.cli(dbt_build_args(config.full_refresh, config.dbt_vars), context=context).stream()
        try:
            events = list(stream.fetch_column_metadata() if fetch_columns else stream)
        finally:  # a failed build too: the checks after it open the file
            release_dbt_duckdb_handle()
        # the version is recorded only with the column metadata it vouches for
        version = {PROJECT_FINGERPRINT: fingerprint} if config.column_metadata else {}
        yield from with_run_metadata(context, events, build_started_at, version, reused or {})


def release_dbt_duckdb_handle() -> None:
    """Column metadata is read through dbt-duckdb's adapter inside this process, which keeps the file
    open with its own configuration: close it, or no other connection (ours, the next dbt run) can
    open the file."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another warehouse: nothing held here
        return
    try:
        DuckDBConnectionManager.env().close()
    except Exception:  # no environment was created (nothing was fetched)
        pass
    DuckDBConnectionManager.close_all_connections()


def with_run_metadata(context: dg.AssetExecutionContext, events: list, build_started_at: datetime,
                      every_asset: Mapping[str, Any], per_asset: Mapping[dg.AssetKey, Mapping[str, Any]]) -> Iterator:
    """The events with ``every_asset`` and ``per_asset`` metadata, the identity and audience ones with
    the build's summaries too."""
    def key_of(event) -> dg.AssetKey | None:
        if isinstance(event, dg.Output):
            return context.asset_key_for_output(event.output_name)
        return getattr(event, "asset_key", None) if isinstance(event, dg.AssetMaterialization) else None

    keys = {key for key in map(key_of, events) if key is not None}
    try:
        with connect(settings.duckdb_path(), read_only=True) as conn:
            summaries = warehouse_metadata(conn, keys, build_started_at)
    except duckdb.Error as error:  # metadata is a nicety: never fail a build over it
        context.log.warning(f"run metadata not read: {error}")
        summaries = {}
    for event in events:
        key = key_of(event)
        if key is None:
            yield event
            continue
        yield event.with_metadata({**event.metadata, **every_asset, **per_asset.get(key, {}), **summaries.get(key, {})})
