"""The Dagster job's steps on the Spark target (``WAREHOUSE_TARGET=spark``).

The asset graph is the same on both engines. On Spark:

- the landing asset lands the new files with Spark (``orchestration/spark/landing.py``), in a
  process of its own that ends before dbt starts: the local Spark's Derby metastore takes one JVM
  at a time;
- the dbt asset runs ``dbt build --target spark`` through dagster-dbt (dbt-spark's session: Spark
  inside the dbt process); dbt's data tests are the assets' checks, as on DuckDB;
- a privacy request's erasure is found in the control database by lineage, as on DuckDB; Spark
  removes those lines from its raw tables and builds every model again from them
  (``erase_and_rebuild``); until that build has passed, the lines stay listed in
  ``erasure-pending.json`` beside the warehouse, and the next landing removes them again and the
  next build is a full refresh;
- after each of them, the control database (``DUCKDB_PATH``) shows Spark's tables as views
  (``orchestration/spark/tables.py``), and the steps that are not dbt (the reconciliation checks,
  privacy requests, audience exports, the sensor, ``lookup``) read Spark's rows through them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from orchestration.core import settings
from orchestration.core.migrations import upgrade
from orchestration.core.warehouse import connect, table_exists
from orchestration.landing.ingestion import discover_landing_files
from orchestration.landing.pending import loaded_files, pending_landing_files
from orchestration.landing.sources import registered_sources
from orchestration.privacy.requests import create_privacy_tables
from orchestration.spark import build as spark
from orchestration.spark.landing import PENDING_ERASURE_FILE, unfinished_work
from orchestration.spark.tables import raw_table_shapes, show_spark_tables, table_folders


def on_spark() -> bool:
    return settings.warehouse_target() == "spark"


def prepare_environment() -> None:
    """The settings dbt's Spark reads (the warehouse folder, absolute; loopback; this Python for
    Spark's Python workers), in this process's environment, which dagster-dbt hands to dbt."""
    missing = spark.missing_requirements()
    if missing:
        raise spark.SparkRunError("WAREHOUSE_TARGET=spark needs " + " and ".join(missing))
    os.environ.update(spark.dbt_environment())


def dbt_target() -> tuple[Path, list[str]]:
    """Where the job's dbt commands keep their build folders, and the arguments that pick the
    profile's target: Spark's own (``target/spark``, ``--target spark``, its settings in the
    environment) on the Spark target, else dbt's defaults."""
    if not on_spark():
        return settings.DBT_PROJECT_DIR / "target", []
    prepare_environment()
    return settings.DBT_PROJECT_DIR / spark.TARGET_PATH, ["--target", spark.TARGET]


def show_tables() -> int:
    """Brings the control database's views in line with Spark's tables, and makes its privacy tables
    (as DuckDB's landing does: the data's version reads them from the first build on); returns the
    number of views."""
    with connect(settings.duckdb_path()) as conn:
        views = show_spark_tables(conn, spark.spark_dir(), raw_table_shapes(registered_sources()))
        upgrade(conn)  # after: a DuckDB warehouse's file is refused above, never upgraded
        create_privacy_tables(conn)
        return views


def why_land() -> list[str]:
    """Why the landing must start Spark, read in the control database and beside the warehouse
    (empty: every landing file is landed, every raw table made, and nothing is left to finish)."""
    database, sources = settings.duckdb_path(), registered_sources()
    if not database.exists():
        return ["nothing landed yet"]
    screened, _ = spark.privacy_screen_rows(database)
    reasons = unfinished_work(spark.spark_dir(), screened)
    folders = table_folders(spark.spark_dir())
    with connect(database, read_only=True) as conn:
        if not all(table_exists(conn, *name.split(".")) and tuple(name.split(".")) in folders
                   for name in raw_table_shapes(sources)):
            reasons.append("a raw table is not made yet")
        elif new_files := pending_landing_files(settings.landing_dir(), sources, loaded_files(conn)):
            reasons.append(f"{len(new_files)} landing file(s) not landed yet")
    return reasons


def land(log: Callable[[str], None]) -> dict:
    """Lands ``LANDING_DIR``'s new files in Spark's raw tables (screened by the privacy requests the
    control database records), then shows them; returns what landed (``build.landed``). Spark does
    not start when there is nothing to land (``why_land``)."""
    if not why_land():
        files = len(discover_landing_files(settings.landing_dir(), registered_sources()))
        log(f"nothing to land: the {files} landing file(s) are landed; Spark not started")
        return {"files_loaded": [], "files_skipped": files, "accepted": {}, "rejected": {}, "erased": {}}
    prepare_environment()
    try:
        results = spark.run_steps([spark.land_files_step()])
    finally:  # what landed before a failure is in Spark's tables: show it
        show_tables()
    summary = spark.landed(results["land"])
    log(f"landed by Spark in {results['land'].seconds:.1f} s")
    return summary


def pending_erasure() -> Path:
    """The line keys privacy requests erased that Spark's models may still hold (landing.PENDING_ERASURE_FILE)."""
    return spark.spark_dir() / PENDING_ERASURE_FILE


def erase_and_rebuild(dbt_vars: dict, log: Callable[[str], None]) -> float:
    """After privacy requests erased people on the Spark target: their lines out of Spark's raw
    tables, then every model built again from them (``dbt build --full-refresh``, the unit tests
    left out), in one Spark; returns the seconds it took."""
    prepare_environment()
    try:
        results = spark.run_steps([spark.erase_step(), spark.build_step(full_refresh=True, unit_tests=False)], dbt_vars)
    finally:
        show_tables()
    pending_erasure().unlink()
    seconds = sum(result.seconds for result in results.values())
    log(f"erasure on Spark: {results['erase'].lines[-1] if results['erase'].lines else 'done'}; every model built "
        f"again from the raw tables in {seconds:.1f} s")
    return seconds
