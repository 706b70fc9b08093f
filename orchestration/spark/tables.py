"""Spark's tables, read by DuckDB: how the Dagster job's steps that are not dbt see a Spark warehouse.

On the Spark target (``WAREHOUSE_TARGET=spark``) ``DUCKDB_PATH`` is the control database: it keeps
what the product itself writes (privacy requests, tombstones and locks, the audience export log,
the state of the checks) in DuckDB tables, and it holds, in each of Spark's schemas (``raw``,
``staging``, ``intermediate``, ``marts``, ``traits``, ``audiences``), a view over every Spark
table's Parquet files. The reconciliation checks, the audience exports, privacy requests, the
sensor, ``lookup`` and ``explain`` then read Spark's rows with the same SQL as on DuckDB, and no
JVM starts for them. Spark writes; DuckDB only reads these files.

A table is the folder ``<SPARK_WAREHOUSE_DIR>/warehouse/<schema>.db/<table>/`` of a local (or
shared) Spark warehouse in Parquet, the default ``spark_file_format`` (a Delta table's folder holds
the files of its old versions too: it cannot be read this way). Timestamps come back from Parquet
as UTC instants and are turned into UTC wall-clock times, as DuckDB's warehouse holds them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from orchestration.core.warehouse import quote_identifier, quote_literal

# Spark's schemas (databases) the views mirror: every one that dbt or the landing writes.
SPARK_SCHEMAS = ("raw", "staging", "intermediate", "marts", "traits", "audiences")


class SparkTablesError(RuntimeError):
    """Spark's tables cannot be shown in the control database."""


def table_folders(spark_warehouse: Path) -> dict[tuple[str, str], Path]:
    """``{(schema, table): folder}`` of the warehouse's tables in ``SPARK_SCHEMAS``."""
    folders = {}
    for schema in SPARK_SCHEMAS:
        schema_dir = spark_warehouse / "warehouse" / f"{schema}.db"
        if schema_dir.is_dir():
            folders.update({(schema, table.name): table for table in sorted(schema_dir.iterdir())
                            if table.is_dir() and not table.name.startswith(("_", "."))})
    return folders


def _select(conn: duckdb.DuckDBPyConnection, folder: Path, empty_shapes: dict[str, list[tuple[str, str]]],
            name: str) -> str | None:
    """The view's query: the folder's Parquet files, timestamps as UTC wall-clock times; a table
    without files (Spark writes none for a table created empty) gets its columns from
    ``empty_shapes``, or has no view (None)."""
    if (folder / "_delta_log").is_dir():
        raise SparkTablesError(f"{name} is a Delta table: the Dagster job reads Spark's tables as Parquet "
                               "(spark_file_format: parquet)")
    if not any(folder.glob("*.parquet")):
        shape = empty_shapes.get(name)
        if shape is None:
            return None
        columns = ", ".join(f"cast(null as {data_type}) as {quote_identifier(column)}" for column, data_type in shape)
        return f"select {columns} where false"
    files = f"read_parquet({quote_literal(str(folder / '*.parquet'))})"
    described = conn.execute(f"describe select * from {files}").fetchall()
    columns = ", ".join(
        f"timezone('UTC', {quote_identifier(column)}) as {quote_identifier(column)}"
        if data_type == "TIMESTAMP WITH TIME ZONE" else quote_identifier(column)
        for column, data_type, *_ in described)
    return f"select {columns} from {files}"


def show_spark_tables(conn: duckdb.DuckDBPyConnection, spark_warehouse: Path,
                      empty_shapes: dict[str, list[tuple[str, str]]] | None = None) -> int:
    """Makes the views of ``conn``'s Spark schemas match the Spark warehouse's tables now: one view
    per table (``empty_shapes``: ``{"schema.table": [(column, DuckDB type)]}`` for the tables Spark
    may hold without files, the raw tables), none for a table gone. Never drops a table: a schema
    that holds one is a DuckDB warehouse, not a Spark target's control database. Returns the
    number of views."""
    wanted = {}
    for (schema, table), folder in table_folders(spark_warehouse).items():
        select = _select(conn, folder, empty_shapes or {}, f"{schema}.{table}")
        if select is not None:
            wanted[(schema, table)] = select
    schemas = ", ".join(quote_literal(schema) for schema in SPARK_SCHEMAS)
    existing = conn.execute(
        "select table_schema, table_name, table_type from information_schema.tables "
        f"where table_catalog = current_database() and table_schema in ({schemas})").fetchall()
    tables = sorted(f"{schema}.{name}" for schema, name, kind in existing if kind != "VIEW")
    if tables:
        raise SparkTablesError(f"{conn.execute('select current_database()').fetchone()[0]} holds DuckDB tables in "
                               f"Spark's schemas ({', '.join(tables[:5])}…): give the Spark target a DUCKDB_PATH of its own")
    conn.execute("begin transaction")
    try:
        for schema, name, _ in existing:
            if (schema, name) not in wanted:
                conn.execute(f"drop view {quote_identifier(schema)}.{quote_identifier(name)}")
        for schema in sorted({schema for schema, _ in wanted}):
            conn.execute(f"create schema if not exists {quote_identifier(schema)}")
        for (schema, name), select in wanted.items():
            conn.execute(f"create or replace view {quote_identifier(schema)}.{quote_identifier(name)} as {select}")
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return len(wanted)


def raw_table_shapes(sources=()) -> dict[str, list[tuple[str, str]]]:
    """The columns of the raw tables, which the landing creates in Spark before any file lands in
    them: the ingestion's own DDL, for the views of those still empty."""
    from orchestration.landing.ingestion import create_raw_tables

    with duckdb.connect() as conn:
        create_raw_tables(conn, list(sources))
        rows = conn.execute("select table_name, column_name, data_type from information_schema.columns "
                            "where table_schema = 'raw' order by table_name, ordinal_position").fetchall()
    shapes: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        shapes.setdefault(f"raw.{table}", []).append((column, data_type))
    return shapes
