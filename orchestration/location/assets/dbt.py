"""The dbt models as Dagster assets, and dbt tests as asset checks."""


import importlib.metadata
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from orchestration.core import settings
from orchestration.core.dbt_args import dbt_build_args, unit_tests_version
from orchestration.core.locking import writer_lock
from orchestration.core.migrations import upgrade
from orchestration.core.warehouse import connect
from orchestration.location import build_state, column_metadata, dbt_event_stream
from orchestration.location.assets.exports import exports_up_to_date
from orchestration.location.assets.landing import DUCKDB_POOL
from orchestration.location.project import (
    dbt_project,
    keep_build_state,
    manifest_fingerprint,
    new_build_folder,
    without_adapter_in_process,
)
from orchestration.location.run_metadata import warehouse_metadata
from orchestration.privacy.requests import request_files
from orchestration.spark import build as spark_build
from orchestration.spark import job as spark_job

dbt_event_stream.install()  # column metadata without a spinning thread while dbt runs, nor tracebacks

STORAGE_KIND = "dagster/storage_kind"
# dbt folder → Dagster group, so the graph reads like the data flow.
GROUP_BY_FOLDER = {"staging": "staging", "intermediate": "identity", "marts": "profiles", "computed": "traits_and_audiences"}


class IdentityWarehouseTranslator(DagsterDbtTranslator):
    """Keys are ``[schema, name]``; a dbt source is the ``raw`` table the ingestion asset lands."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        """The engine the job builds on as the asset's kind and storage: the code location's
        manifest is the DuckDB target's parse on either engine (the models are the same)."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        parsed_for, engine = manifest.get("metadata", {}).get("adapter_type"), settings.warehouse_target()
        if parsed_for in (None, engine) or parsed_for not in spec.kinds:
            return spec
        return spec.replace_attributes(kinds={engine if kind == parsed_for else kind for kind in spec.kinds},
                                       metadata={**spec.metadata, STORAGE_KIND: engine})

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # dagster-dbt's own choice wins: a model's `meta: {dagster: {group: ...}}` (int_profile_changes,
        # an intermediate model that sits between the profile marts) or its dbt group; else its folder.
        folder = dbt_resource_props.get("fqn", [None, None])[1]
        return super().get_group_name(dbt_resource_props) or GROUP_BY_FOLDER.get(folder, "dbt")


class DbtBuildConfig(dg.Config):
    full_refresh: bool = False
    dbt_vars: dict[str, Any] = {}
    # Column schema and column-level lineage on every model: computed once per version of the dbt
    # project (30-50 s: sqlglot over every model), then carried over (orchestration/location/column_metadata.py).
    column_metadata: bool = True
    # dbt unit tests test the SQL on fixtures, not the data: they run when the project, the vars or
    # dbt's version changed since the selected models were last built with them passing (false), or
    # in every build (true).
    always_run_unit_tests: bool = False


# The dbt project version a materialization was built from (manifest_fingerprint), and the metadata
# that follows from the project alone, not from the data.
PROJECT_FINGERPRINT = "dbt_project_fingerprint"
COLUMN_METADATA = column_metadata.COLUMN_METADATA
# The unit_tests_version the model's unit tests passed for: dbt build materializes a model only
# after its unit tests pass, and a build that leaves them out carries the version on.
UNIT_TESTS_PASSED = "dbt_unit_tests_passed_for"
# Whether this build ran the unit tests (UNIT_TESTS_RAN) or left them out (UNIT_TESTS_LEFT_OUT).
UNIT_TESTS = "dbt_unit_tests"
UNIT_TESTS_RAN = "run in this build"
UNIT_TESTS_LEFT_OUT = "not run: passed in an earlier build of this version"
# The packages a unit test's outcome depends on besides the project (unit_tests_version).
UNIT_TEST_PACKAGES = ("dbt-core", "dbt-duckdb", "duckdb")
SPARK_UNIT_TEST_PACKAGES = ("dbt-core", "dbt-spark", "pyspark")


def latest_metadata(instance: dg.DagsterInstance, keys: set[dg.AssetKey]) -> dict[dg.AssetKey, Mapping[str, Any]]:
    """The metadata of each asset's latest materialization ({} if it has none), in one query."""
    latest = {record.asset_entry.asset_key: record.asset_entry.last_materialization
              for record in instance.get_asset_records(list(keys))}

    def metadata(entry) -> Mapping[str, Any]:
        return entry.asset_materialization.metadata if entry and entry.asset_materialization else {}
    return {key: metadata(latest.get(key)) for key in keys}


def reusable_column_metadata(latest: Mapping[dg.AssetKey, Mapping[str, Any]],
                             fingerprint: str) -> dict[dg.AssetKey, dict] | None:
    """The column metadata of each asset's latest materialization (``latest_metadata``), when all of
    them were built from this version of the project; else None (fetch it anew)."""
    reused = {}
    for key, metadata in latest.items():
        recorded = metadata.get(PROJECT_FINGERPRINT)
        if recorded is None or recorded.value != fingerprint:
            return None
        reused[key] = {name: metadata[name] for name in COLUMN_METADATA if name in metadata}
    return reused


def carried_over_columns(config: "DbtBuildConfig", latest: Mapping[dg.AssetKey, Mapping[str, Any]], fingerprint: str,
                         cache: Path, keys: set[dg.AssetKey]) -> tuple[dict[dg.AssetKey, dict] | None, str | None]:
    """The column metadata of ``keys`` when the project (``fingerprint``) is unchanged, and where it
    came from: the assets' last materializations, else the ``cache`` file beside the build folders;
    (None, None) when it is to be fetched, or is off."""
    if not config.column_metadata:
        return None, None
    reused = reusable_column_metadata(latest, fingerprint)
    if reused is not None:
        return reused, "the last materializations"
    reused = column_metadata.load(cache, column_metadata.metadata_version(fingerprint), keys)
    return (reused, cache.name) if reused is not None else (None, None)


def unit_tests_passed(latest: Mapping[dg.AssetKey, Mapping[str, Any]], version: str) -> bool:
    """Whether the latest materialization of every asset (``latest_metadata``) records that its unit
    tests passed for ``version``."""
    def passed_for(metadata: Mapping[str, Any]) -> str | None:
        recorded = metadata.get(UNIT_TESTS_PASSED)
        return recorded.value if recorded is not None else None
    return bool(latest) and all(passed_for(metadata) == version for metadata in latest.values())


def installed_versions(packages: tuple[str, ...]) -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in packages}


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
    selected = set(context.selected_asset_keys)
    latest = latest_metadata(context.instance, selected)
    if spark_job.on_spark():
        yield from build_on_spark(context, dbt, config, fingerprint, latest, build_started_at)
        return
    metadata_file = dbt_project.project_dir / dbt_project.target_path / column_metadata.CACHE_FILE
    metadata_version = column_metadata.metadata_version(fingerprint)
    reused, reused_from = carried_over_columns(config, latest, fingerprint, metadata_file, selected)
    fetch_columns = config.column_metadata and reused is None
    tests_version = unit_tests_version(fingerprint, config.dbt_vars, installed_versions(UNIT_TEST_PACKAGES))
    run_unit_tests = config.always_run_unit_tests or not unit_tests_passed(latest, tests_version)
    if not run_unit_tests:
        context.log.info("dbt unit tests: passed for this version of the project and vars, not run again")
    with writer_lock(settings.duckdb_path(), context.log.info):  # dbt opens the file itself
        with connect(settings.duckdb_path()) as conn:  # a build without landing: the models read the current shapes
            upgrade(conn, context.log.info)
        plan, version = plan_this_build(context, config, config.full_refresh)
        for line in plan.summary():
            context.log.info(line)
        if plan.builds_nothing:  # no dbt process: the assets keep their last materializations
            return
        started = time.monotonic()
        with (nullcontext() if fetch_columns else without_adapter_in_process()), \
                rebuilding_from_scratch(plan.rebuilt_from_scratch):
            folder = new_build_folder(dbt_project.project_dir / dbt_project.target_path, context.op_def.name,
                                      context.run.run_id, settings.duckdb_path())
            build = dbt.cli(dbt_build_args(config.full_refresh, config.dbt_vars, unit_tests=run_unit_tests,
                                           exclude=plan.left_out), context=context, target_path=folder)
            stream = build.stream()
        try:
            if fetch_columns:
                # dagster-dbt reads the whole stream (dbt ends) before it fetches anything
                events = list(stream)
                built = time.monotonic()
                events = list(stream_with_column_metadata(build, events))
            else:
                events = list(stream)
                built = time.monotonic()
        finally:  # a failed build too: the checks after it open the file
            release_dbt_duckdb_handle()
            record_what_was_built(build.target_path, plan, version)
            keep_build_state(build.target_path, f"{context.op_def.name}-*", settings.duckdb_path())
        if fetch_columns:
            column_metadata.store(metadata_file, metadata_version, {
                key: {name: value for name, value in event.metadata.items() if name in COLUMN_METADATA}
                for event in events if (key := materialized_key(context, event)) is not None})
        metadata_seconds = time.monotonic() - built
        context.log.info(f"dbt build: {built - started:.1f} s; column schema and lineage: {metadata_seconds:.1f} s, "
                         + ("fetched (new version of the dbt project), kept for the next builds" if fetch_columns
                            else f"unchanged dbt project, carried over from {reused_from}" if reused is not None
                            else "off (column_metadata: false)"))
        # the project version is recorded only with the column metadata it vouches for
        versions = {PROJECT_FINGERPRINT: fingerprint} if config.column_metadata else {}
        versions.update({UNIT_TESTS_PASSED: tests_version,
                         UNIT_TESTS: UNIT_TESTS_RAN if run_unit_tests else UNIT_TESTS_LEFT_OUT})
        yield from with_run_metadata(context, events, build_started_at, versions, reused or {})


def build_on_spark(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig, fingerprint: str,
                   latest: Mapping[dg.AssetKey, Mapping[str, Any]], build_started_at: datetime) -> Iterator:
    """``dbt build --target spark`` (orchestration/spark/job.py): the selected models, their data
    tests as asset checks, and the unit tests when they have not passed on Spark for this version of
    the project. The build plan is DuckDB's, kept in the control database: no model to build, no
    Spark started. Column schema and lineage are read without Spark (``column_metadata.on_spark``),
    once per version of the project, as on DuckDB; the run metadata is DuckDB's, read through the views."""
    # lines a privacy request erased that a run cut short left in the models: build them all again
    erasure_pending = spark_job.pending_erasure().exists()
    if erasure_pending:
        context.log.info("an erasure is pending (erasure-pending.json): every model is built again from the raw tables")
    full_refresh = config.full_refresh or erasure_pending
    tests_version = unit_tests_version(fingerprint, config.dbt_vars, installed_versions(SPARK_UNIT_TEST_PACKAGES))
    run_unit_tests = config.always_run_unit_tests or not unit_tests_passed(latest, tests_version)
    with writer_lock(settings.duckdb_path(), context.log.info):  # one run at a time on the Spark warehouse too
        plan, version = plan_this_build(context, config, full_refresh)
        for line in plan.summary():
            context.log.info(line)
        if plan.builds_nothing:  # no Spark: the assets keep their last materializations
            return
        target_root, target_args = spark_job.dbt_target()
        folder = new_build_folder(target_root, context.op_def.name, context.run.run_id, spark_build.spark_dir())
        started = time.monotonic()
        try:
            with without_adapter_in_process(), rebuilding_from_scratch(plan.rebuilt_from_scratch):
                build = dbt.cli([*dbt_build_args(full_refresh, config.dbt_vars, unit_tests=run_unit_tests,
                                                 exclude=plan.left_out), *target_args],
                                context=context, target_path=folder)
                events = list(build.stream())
            if erasure_pending and set(context.selected_asset_keys) == set(context.assets_def.keys):
                spark_job.pending_erasure().unlink()  # every model built, and passed: none holds the lines
        finally:  # what a failed build wrote is in Spark's tables: show it, and record what it built
            spark_job.show_tables()
            record_what_was_built(folder, plan, version)
        keep_build_state(folder, f"{context.op_def.name}-*", spark_build.spark_dir())
    built = time.monotonic()
    columns, columns_from = spark_column_metadata(context, config, f"{fingerprint}:spark", latest, folder, events)
    context.log.info(f"dbt build on Spark: {built - started:.1f} s; unit tests "
                     + ("run" if run_unit_tests else "passed for this version of the project on Spark, not run again")
                     + f"; column schema and lineage: {time.monotonic() - built:.1f} s, {columns_from}")
    versions = {UNIT_TESTS_PASSED: tests_version, UNIT_TESTS: UNIT_TESTS_RAN if run_unit_tests else UNIT_TESTS_LEFT_OUT}
    if config.column_metadata:  # the project version is recorded only with the column metadata it vouches for
        versions[PROJECT_FINGERPRINT] = f"{fingerprint}:spark"
    yield from with_run_metadata(context, events, build_started_at, versions, columns)


def spark_column_metadata(context: dg.AssetExecutionContext, config: DbtBuildConfig, fingerprint: str,
                          latest: Mapping[dg.AssetKey, Mapping[str, Any]], build_folder: Path,
                          events: list) -> tuple[dict[dg.AssetKey, dict], str]:
    """The column metadata of the Spark build's models (``fingerprint``: the project's, on Spark),
    and where it came from: carried over while the project is unchanged, else read from the
    control database's views and the build's compiled SQL, and kept beside Spark's build folders."""
    if not config.column_metadata:
        return {}, "off (column_metadata: false)"
    cache = build_folder.parent / column_metadata.CACHE_FILE
    reused, reused_from = carried_over_columns(config, latest, fingerprint, cache, set(context.selected_asset_keys))
    if reused is not None:
        return reused, f"unchanged dbt project, carried over from {reused_from}"
    keys = {key for key in (materialized_key(context, event) for event in events) if key is not None}
    with connect(settings.duckdb_path(), read_only=True) as conn:
        fetched = column_metadata.on_spark(conn, build_folder, keys, IdentityWarehouseTranslator(), dbt_project)
    column_metadata.store(cache, column_metadata.metadata_version(fingerprint), fetched)
    return fetched, "read from the control database's views (new version of the dbt project), kept for the next builds"


def plan_this_build(context: dg.AssetExecutionContext, config: DbtBuildConfig,
                    full_refresh: bool) -> tuple[build_state.BuildPlan, str]:
    """What the build does besides an ordinary incremental build (orchestration/location/build_state.py):
    the models whose code changed, rebuilt from scratch with what reads them; when nothing new
    landed, only the models that change as time passes, and none while time has changed none. A
    full refresh forgets the checks' last passes (every row is rewritten: the checks read them all)."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    dbt_vars = {**settings.dbt_vars(), **config.dbt_vars}
    privacy_config = context.run.run_config.get("ops", {}).get("process_privacy_requests", {}).get("config", {})
    # a run of chosen models (the UI's "Materialize selected") builds what was chosen
    whole_project = set(context.selected_asset_keys) == set(context.assets_def.keys)
    nothing_pending = whole_project and not full_refresh
    # Privacy requests read models that are current when nothing new landed, but Dagster runs their
    # step only after a build that wrote the model it follows: with requests waiting, the build
    # writes at least the models that change as time passes (that one among them), or all.
    requests_wait = bool(privacy_config.get("requests") or request_files(settings.landing_dir()))
    with connect(settings.duckdb_path()) as conn:
        if full_refresh:
            build_state.forget_checks_passed(conn)
        build_state.mark_last_run(conn, finished_ok=False)  # until `identity-warehouse run` says how it ended
        plan, version = build_state.plan_from_warehouse(
            conn, manifest, dbt_vars, nothing_pending, lambda: not requests_wait and exports_up_to_date(conn))
        if requests_wait and plan.builds_nothing:  # no model changes as time passes
            plan, version = build_state.plan_from_warehouse(conn, manifest, dbt_vars, False, lambda: False)
        build_state.forget_as_of(conn, plan)
    return plan, version


@contextmanager
def rebuilding_from_scratch(model_names: list[str]) -> Iterator[None]:
    """dbt (started inside) rebuilds these models from scratch (macros/incremental/rebuild_from_scratch.sql)."""
    saved = os.environ.pop(build_state.REBUILD_ENV, None)
    if model_names:
        os.environ[build_state.REBUILD_ENV] = ",".join(model_names)
    try:
        yield
    finally:
        os.environ.pop(build_state.REBUILD_ENV, None)
        if saved is not None:
            os.environ[build_state.REBUILD_ENV] = saved


def record_what_was_built(target_path: Path, plan: build_state.BuildPlan, version: str) -> None:
    """Records the code and data each model dbt built was built from (run_results.json): a model
    that failed keeps its old record, so the next build does its work again."""
    results_file = target_path / "run_results.json"
    if not results_file.exists():
        return
    succeeded = build_state.succeeded_models(json.loads(results_file.read_text()))
    with connect(settings.duckdb_path()) as conn:
        build_state.record_builds(conn, plan, succeeded, version, datetime.now(timezone.utc).replace(tzinfo=None))


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


def stream_with_column_metadata(build, events: list) -> Iterator:
    """dagster-dbt's ``fetch_column_metadata()`` over events already read from the dbt process."""
    from dagster_dbt.core.dbt_event_iterator import DbtEventIterator

    return DbtEventIterator(iter(events), build).fetch_column_metadata()


def materialized_key(context: dg.AssetExecutionContext, event) -> dg.AssetKey | None:
    if isinstance(event, dg.Output):
        return context.asset_key_for_output(event.output_name)
    return getattr(event, "asset_key", None) if isinstance(event, dg.AssetMaterialization) else None


def with_run_metadata(context: dg.AssetExecutionContext, events: list, build_started_at: datetime,
                      every_asset: Mapping[str, Any], per_asset: Mapping[dg.AssetKey, Mapping[str, Any]]) -> Iterator:
    """The events with ``every_asset`` and ``per_asset`` metadata, the identity and audience ones with
    the build's summaries too."""
    def key_of(event) -> dg.AssetKey | None:
        return materialized_key(context, event)

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
