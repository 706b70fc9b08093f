"""Column schema and lineage of the dbt models, kept on disk per version of the dbt project.

dagster-dbt builds them after dbt ends: one adapter query per model and its parents, then sqlglot
over each model's compiled SQL, once per column (30 s on the sample, 48 s at 1,500 people). They
follow from the project and the versions of the packages that compute them, not from the data, so
they are fetched when one of those changed and read back from ``target/column_metadata.json``
otherwise. The file sits beside the manifest: every warehouse built from this checkout shares it,
whatever Dagster instance records the runs (an ephemeral one for ``identity-warehouse run`` without
``DAGSTER_HOME``, a fresh ``DAGSTER_HOME``, the tests).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.core.locking import file_lock
from orchestration.spark.landing import SPARK_TYPES
from orchestration.spark.tables import SPARK_SCHEMAS

CACHE_FILE = "column_metadata.json"
# The metadata entries kept: those that follow from the project alone.
COLUMN_METADATA = ("dagster/column_schema", "dagster/column_lineage")
# Besides the project: what reads the columns and derives the lineage.
PACKAGES = ("dagster-dbt", "sqlglot", "dbt-core", "dbt-duckdb", "duckdb")
# Versions kept at once: the tests and other warehouses of a checkout build other versions beside
# the current one (the database name is part of the project's fingerprint).
KEPT_VERSIONS = 8


def metadata_version(project_fingerprint: str) -> str:
    """What the column metadata follows from: the dbt project (``manifest_fingerprint``) and the
    installed versions of ``PACKAGES``."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    described = json.dumps({"project": project_fingerprint, "packages": packages}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()


def _read(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: fetch anew
        return {}
    return content if isinstance(content, dict) else {}


def load(path: Path, version: str, keys: Iterable[dg.AssetKey]) -> dict[dg.AssetKey, dict[str, Any]] | None:
    """The column metadata of every one of ``keys`` for ``version``; None when any is missing."""
    assets = _read(path).get(version, {}).get("assets", {})
    found = {}
    for key in keys:
        serialized = assets.get(key.to_user_string())
        if serialized is None:
            return None
        try:
            found[key] = dict(dg.deserialize_value(serialized, dict))
        except Exception:  # written by another version of Dagster: fetch anew
            return None
    return found


def store(path: Path, version: str, metadata: Mapping[dg.AssetKey, Mapping[str, Any]]) -> None:
    """Adds the column metadata of these assets under ``version`` (keeping that of the other assets
    of the version: a run of a few models adds to it), and drops the oldest versions past
    ``KEPT_VERSIONS``. Written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(f".{path.name}.lock")):
        content = _read(path)
        entry = content.pop(version, {"assets": {}})  # re-inserted last: the newest
        entry["assets"].update({
            key.to_user_string(): dg.serialize_value({name: value for name, value in entries.items()
                                                      if name in COLUMN_METADATA})
            for key, entries in metadata.items()})
        content[version] = entry
        for old in list(content)[:-KEPT_VERSIONS]:
            del content[old]
        staged = path.with_name(f".{path.name}.{os.getpid()}")
        staged.write_text(json.dumps(content))
        os.replace(staged, path)


# --- On Spark ----------------------------------------------------------------------------------
# dagster-dbt reads a model's columns through dbt's adapter in the Dagster process: on Spark that
# would start dbt's Spark there. The control database's views of Spark's tables have the columns
# (orchestration/spark/tables.py), and the lineage is derived from the Spark build's own compiled
# SQL and manifest, by dagster-dbt's code, as on DuckDB.


def _spark_columns(conn, schemas: Iterable[str]) -> dict[tuple[str, str], dict[str, dict[str, str]]]:
    """``{(schema, table): {column: {"data_type": Spark's name for it}}}`` of the control database's views."""
    schemas = list(schemas)
    rows = conn.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        f"where table_catalog = current_database() and table_schema in ({', '.join('?' for _ in schemas)}) "
        "order by table_schema, table_name, ordinal_position", schemas).fetchall()
    columns: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for schema, table, column, data_type in rows:
        columns.setdefault((schema, table), {})[column] = {"data_type": SPARK_TYPES.get(data_type, data_type.lower())}
    return columns


def on_spark(conn, build_folder: Path, keys: Iterable[dg.AssetKey], translator, project) -> dict[dg.AssetKey, dict]:
    """Column schema and lineage of the models of ``keys`` that a Spark build (``build_folder``: its
    manifest and compiled SQL) made, their columns read in the control database ``conn``."""
    from dagster_dbt.asset_utils import default_metadata_from_dbt_resource_props
    from dagster_dbt.core.dbt_cli_event import EventHistoryMetadata, _build_column_lineage_metadata

    manifest = json.loads((build_folder / "manifest.json").read_text())
    columns = _spark_columns(conn, SPARK_SCHEMAS)

    def columns_of(props: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        return columns.get((props["schema"], props.get("identifier") or props.get("alias") or props["name"]), {})

    wanted, found = set(keys), {}
    for unique_id, props in manifest["nodes"].items():
        key = translator.get_asset_key(props) if props["resource_type"] == "model" else None
        if key not in wanted or not columns_of(props):
            continue
        metadata = dict(default_metadata_from_dbt_resource_props({"columns": columns_of(props)}))
        parents = [manifest["nodes"].get(uid) or manifest["sources"].get(uid) for uid in manifest["parent_map"].get(unique_id, [])]
        history = EventHistoryMetadata(columns=columns_of(props),
                                       parents={parent["relation_name"]: columns_of(parent) for parent in parents if parent})
        try:
            metadata.update(_build_column_lineage_metadata(history, props, manifest, translator, build_folder, project))
        except Exception:  # sqlglot cannot read a model or two: no lineage for it, as dagster-dbt does
            pass
        found[key] = {name: value for name, value in metadata.items() if name in COLUMN_METADATA}
    return found
