"""The control database's views of Spark's tables (orchestration/spark/tables.py), on Parquet folders
laid out as Spark's local warehouse lays them out (no Spark needed)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.spark.tables import SparkTablesError, raw_table_shapes, show_spark_tables


def _spark_table(root: Path, schema: str, table: str, select: str | None, files: int = 2) -> Path:
    """A table folder as Spark writes one: part files, a _SUCCESS marker, checksum files."""
    folder = root / "warehouse" / f"{schema}.db" / table
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").touch()
    if select is not None:
        with duckdb.connect() as conn:
            conn.execute("set TimeZone = 'Europe/Paris'")  # a reader's time zone must not move the times
            for part in range(files):
                path = folder / f"part-0000{part}-c000.snappy.parquet"
                conn.execute(f"copy ({select}) to '{path}' (format parquet)")
                (folder / f".{path.name}.crc").write_bytes(b"\0")
    return folder


@pytest.fixture
def spark_warehouse(tmp_path) -> Path:
    root = tmp_path / "spark"
    _spark_table(root, "marts", "profiles",
                 "select 'p1' as profile_id, timestamptz '2024-06-01 09:30:00+00' as first_seen_at, 3::bigint as n")
    _spark_table(root, "raw", "groups", None)  # created empty by the landing: Spark writes no file
    _spark_table(root, "audiences", "nobody_yet", None)  # an empty model without a known shape
    return root


def _views(conn) -> dict[str, str]:
    return dict(conn.execute("select table_schema || '.' || table_name, table_type from information_schema.tables "
                             "where table_schema not in ('privacy')").fetchall())


def test_every_spark_table_is_a_view_with_its_rows_and_utc_wall_clock_times(spark_warehouse, tmp_path):
    with duckdb.connect(str(tmp_path / "identity_warehouse.duckdb")) as conn:
        assert show_spark_tables(conn, spark_warehouse, raw_table_shapes()) == 2
        assert _views(conn) == {"marts.profiles": "VIEW", "raw.groups": "VIEW"}
        assert conn.execute("select * from marts.profiles").fetchall() == [
            ("p1", datetime(2024, 6, 1, 9, 30), 3), ("p1", datetime(2024, 6, 1, 9, 30), 3)]  # both part files
        assert dict(conn.execute("select column_name, column_type from (describe marts.profiles)").fetchall())[
            "first_seen_at"] == "TIMESTAMP"
        # the empty raw table has the ingestion's columns
        groups = conn.execute("select column_name, column_type from (describe raw.groups)").fetchall()
        assert groups == raw_table_shapes()["raw.groups"] and conn.execute("select count(*) from raw.groups").fetchone() == (0,)


def test_views_follow_the_tables_new_gone_and_filled(spark_warehouse, tmp_path):
    with duckdb.connect(str(tmp_path / "identity_warehouse.duckdb")) as conn:
        show_spark_tables(conn, spark_warehouse, raw_table_shapes())
        _spark_table(spark_warehouse, "traits", "profile_engagement", "select 'p1' as profile_id, 2 as events")
        (spark_warehouse / "warehouse" / "raw.db" / "groups").rename(spark_warehouse / "gone")
        assert show_spark_tables(conn, spark_warehouse, raw_table_shapes()) == 2
        assert _views(conn) == {"marts.profiles": "VIEW", "traits.profile_engagement": "VIEW"}
        assert conn.execute("select events from traits.profile_engagement").fetchall() == [(2,), (2,)]


def test_a_duckdb_warehouse_is_never_touched(spark_warehouse, tmp_path):
    """DUCKDB_PATH holding a DuckDB-built warehouse: refused, nothing dropped or replaced."""
    with duckdb.connect(str(tmp_path / "identity_warehouse.duckdb")) as conn:
        conn.execute("create schema marts; create table marts.profiles as select 'kept' as profile_id")
        with pytest.raises(SparkTablesError, match="marts.profiles.*DUCKDB_PATH of its own"):
            show_spark_tables(conn, spark_warehouse, raw_table_shapes())
        assert conn.execute("select * from marts.profiles").fetchall() == [("kept",)]
        assert _views(conn) == {"marts.profiles": "BASE TABLE"}


def test_a_delta_table_is_refused(spark_warehouse, tmp_path):
    (spark_warehouse / "warehouse" / "marts.db" / "profiles" / "_delta_log").mkdir()
    with duckdb.connect(str(tmp_path / "identity_warehouse.duckdb")) as conn:
        with pytest.raises(SparkTablesError, match="marts.profiles is a Delta table"):
            show_spark_tables(conn, spark_warehouse, raw_table_shapes())
