"""The warehouse's schema version and the steps that bring an older warehouse to it.

The version is recorded in the warehouse (``meta.schema_version``: one row per step applied, with
when). ``upgrade()`` runs before a run touches the tables (the landing, build and privacy assets,
the Spark landing), under the writer lock: it reads the version and applies the steps above it, in
order, each in one transaction with its row. A fresh warehouse is created at the current version
(the models and ``create_privacy_tables`` create the current shapes); a warehouse from before the
version table (version 0) gets every step.

The dbt models read their tables as the current version shapes them: an upgrade never lives in a
model. When a change alters the shape of a table a later build reads (a column a model reads from
``this``, a state table, a privacy table), add a step here, with the next version number, written
against the old shape and frozen: a step never changes once released.

Steps up to version 4 upgrade warehouses built before the version table: they check the shape
first (those warehouses come from many versions) and do nothing where it is current already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from orchestration.core.warehouse import fetch_value, quote_identifier

VERSION_SCHEMA, VERSION_TABLE = "meta", "schema_version"
# A rules_fingerprint no build writes: a model whose rows carry it recomputes every row once.
UPGRADED_FINGERPRINT = "upgraded: recompute"
# updated_at of rows from before the column: older than every change since, so a build that looks
# for what changed since its last build finds everything.
BEFORE_EVERYTHING = "1900-01-01 00:00:00"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


# ---------------------------------------------------------------------------------------------
# Helpers the steps share
# ---------------------------------------------------------------------------------------------


def _columns(conn, schema: str, table: str) -> dict[str, str] | None:
    """The table's columns (lower-case name → type), or None when it does not exist."""
    rows = conn.execute(
        "select lower(column_name), data_type from duckdb_columns() "
        "where database_name = current_database() and schema_name = ? and table_name = ?",
        [schema, table]).fetchall()
    return dict(rows) or None


def _add_missing(conn, schema: str, table: str, columns: dict[str, str],
                 fill: dict[str, str] | None = None) -> bool:
    """Adds the ``columns`` (name → SQL type) the table lacks; ``fill`` (name → value, bound) sets a
    column on every row when anything was added. Whether the table had an old shape."""
    present = _columns(conn, schema, table)
    if present is None:
        return False
    missing = {name: kind for name, kind in columns.items() if name not in present}
    if not missing:
        return False
    relation = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    for name, kind in missing.items():
        conn.execute(f"alter table {relation} add column {quote_identifier(name)} {kind}")
    for name, value in (fill or {}).items():
        conn.execute(f"update {relation} set {quote_identifier(name)} = ?", [value])
    return True


# ---------------------------------------------------------------------------------------------
# The steps
# ---------------------------------------------------------------------------------------------


def _v1_identity_change_columns(conn) -> None:
    """The identity models' change tracking (incremental identity graph). A table without it is
    marked built under other rules (its next build recomputes every row, as a model used to do on
    seeing the old layout); int_message_duplicates and int_profile_ids read a null as "everything
    changed" already, and int_profile_ids keeps its ids."""
    recompute = {"rules_fingerprint": UPGRADED_FINGERPRINT}
    _add_missing(conn, "intermediate", "int_identifiers",
                 {"rules_fingerprint": "varchar", "loaded_at": "timestamp", "message_type": "varchar",
                  "built_at": "timestamp"}, recompute)
    _add_missing(conn, "intermediate", "int_identity_edges",
                 {"rules_fingerprint": "varchar", "built_at": "timestamp"}, recompute)
    _add_missing(conn, "intermediate", "int_identity_components",
                 {"graph_component_key": "varchar", "first_seen_at": "timestamp", "message_count": "bigint",
                  "is_junk": "boolean", "rules_fingerprint": "varchar", "built_at": "timestamp"}, recompute)
    _add_missing(conn, "intermediate", "int_message_duplicates", {"copies_loaded_until": "timestamp"})
    _add_missing(conn, "intermediate", "int_profile_ids",
                 {"is_junk": "boolean", "changed_at": "timestamp", "components_built_at": "timestamp"})


def _v2_marts_and_staging_change_columns(conn) -> None:
    """The marts' ``updated_at`` (and profile_events' ``loaded_at``, ``event_at_status``): rows from
    before them count as written before every change, so the next build rewrites them all. A Segment
    staging table from before ``event_at_status`` is emptied: it is a copy of ``raw``, and the next
    build reads raw whole again, every message with its status."""
    before = {"updated_at": BEFORE_EVERYTHING}
    for table in ("profiles", "profile_trait_sources", "identity_links"):
        _add_missing(conn, "marts", table, {"updated_at": "timestamp"}, before)
    _add_missing(conn, "marts", "profile_events",
                 {"loaded_at": "timestamp", "updated_at": "timestamp", "event_at_status": "varchar"}, before)
    staging = [name for (name,) in conn.execute(
        "select table_name from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'staging' and starts_with(table_name, 'stg_segment__')").fetchall()]
    for table in staging:
        if _add_missing(conn, "staging", table, {"event_at_status": "varchar"}):
            conn.execute(f"delete from staging.{quote_identifier(table)}")


def _v3_trait_group_state(conn) -> None:
    """A computed trait group's state columns (as_of, updated_at, rules_fingerprint): a group
    table without them is marked computed under other definitions (recomputed once). A group
    materialized as a plain table is replaced by its next build anyway."""
    groups = [name for (name,) in conn.execute(
        "select table_name from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'traits'").fetchall()]
    for table in groups:
        _add_missing(conn, "traits", table,
                     {"as_of": "timestamp", "updated_at": "timestamp", "rules_fingerprint": "varchar"},
                     {"rules_fingerprint": UPGRADED_FINGERPRINT})


def _v4_privacy_requests_fingerprint(conn) -> None:
    """privacy.requests gets ``fingerprint`` and loses its primary key (a request id reused for a
    different request is logged as refused). DuckDB cannot drop a constraint: the table is copied."""
    columns = _columns(conn, "privacy", "requests")
    if columns is None:
        return
    keyed = fetch_value(
        conn, "select count(*) from duckdb_constraints() where database_name = current_database() "
        "and schema_name = 'privacy' and table_name = 'requests' and constraint_type = 'PRIMARY KEY'")
    if "fingerprint" in columns and not keyed:
        return
    conn.execute("alter table privacy.requests rename to requests__v3")
    conn.execute("""
        create table privacy.requests (
            request_id varchar not null,
            action varchar,
            identifier_type varchar,
            identifier_hash varchar,
            requested_by varchar,
            requested_at timestamp,
            source varchar not null,
            received_at timestamp not null,
            processed_at timestamp not null,
            outcome varchar not null,
            detail varchar,
            profiles_found bigint not null default 0,
            identifiers_erased bigint not null default 0,
            rows_erased bigint not null default 0,
            rows_erased_by_table json,
            files_scrubbed bigint not null default 0,
            export_path varchar,
            fingerprint varchar
        )
    """)
    conn.execute("insert into privacy.requests by name select * from privacy.requests__v3")
    conn.execute("drop table privacy.requests__v3")


def _v5_model_builds_as_of(conn) -> None:
    """build_state.model_builds records the as_of a model that reads the clock was built at. A row
    without one is unknown: that model is built by the next build with nothing new."""
    _add_missing(conn, "build_state", "model_builds", {"as_of": "timestamp"})


def _v6_identity_map_updated_at(conn) -> None:
    """marts.profile_identifiers' ``updated_at`` (the map became incremental): rows from before it count
    as written before every change, so the next build rewrites them all. The identifier summaries
    (int_identity_conflicts, int_identity_nodes) need no step: without their state table beside them
    (``<model>__counted``) their next build summarises every identifier and adds ``built_at``."""
    _add_missing(conn, "marts", "profile_identifiers", {"updated_at": "timestamp"}, {"updated_at": BEFORE_EVERYTHING})


MIGRATIONS = [
    Migration(1, "identity models: change-tracking columns", _v1_identity_change_columns),
    Migration(2, "marts and Segment staging: updated_at, loaded_at, event_at_status", _v2_marts_and_staging_change_columns),
    Migration(3, "computed trait groups: state columns", _v3_trait_group_state),
    Migration(4, "privacy.requests: fingerprint, no primary key", _v4_privacy_requests_fingerprint),
    Migration(5, "build_state.model_builds: as_of", _v5_model_builds_as_of),
    Migration(6, "marts.profile_identifiers: updated_at", _v6_identity_map_updated_at),
]
CURRENT_VERSION = MIGRATIONS[-1].version


# ---------------------------------------------------------------------------------------------
# Reading and upgrading
# ---------------------------------------------------------------------------------------------


def schema_version(conn: duckdb.DuckDBPyConnection) -> int | None:
    """The warehouse's version: the last step recorded; 0 for a warehouse from before the version
    table; None for an empty one (nothing to upgrade)."""
    if _columns(conn, VERSION_SCHEMA, VERSION_TABLE) is not None:
        return fetch_value(conn, f"select coalesce(max(version), 0) from {_version_relation()}")
    tables = fetch_value(conn, "select count(*) from duckdb_tables() "
                               "where database_name = current_database() and not temporary")
    return 0 if tables else None


def upgrade(conn: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None) -> list[int]:
    """Brings the warehouse to ``CURRENT_VERSION``; returns the versions applied (none when it is
    current: one query). The caller holds the writer lock (``warehouse.connect`` takes it)."""
    version = schema_version(conn)
    if version is not None and version >= CURRENT_VERSION:
        return []
    conn.execute(f"create schema if not exists {quote_identifier(VERSION_SCHEMA)}")
    conn.execute(f"create table if not exists {_version_relation()} ("
                 "version integer not null, applied_at timestamp not null, description varchar not null)")
    if version is None:  # a new warehouse: its tables are created in the current shape
        _record(conn, CURRENT_VERSION, "created at this version")
        return []
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        conn.execute("begin transaction")
        try:
            migration.apply(conn)
            _record(conn, migration.version, migration.description)
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
        applied.append(migration.version)
        if log:
            log(f"warehouse upgraded to schema version {migration.version}: {migration.description}")
    return applied


def _version_relation() -> str:
    return f"{quote_identifier(VERSION_SCHEMA)}.{quote_identifier(VERSION_TABLE)}"


def _record(conn, version: int, description: str) -> None:
    conn.execute(f"insert into {_version_relation()} values (?, now() at time zone 'UTC', ?)", [version, description])

