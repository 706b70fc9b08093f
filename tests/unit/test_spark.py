"""The Spark target's plumbing, without Spark: the steps handed to the worker and dbt, and what is
read back from their output."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from orchestration.spark import build as spark


def test_the_land_step_names_absolute_folders_for_the_worker_in_the_dbt_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPARK_WAREHOUSE_DIR", "spark")
    monkeypatch.setenv("LANDING_DIR", "landing")
    monkeypatch.delenv("SPARK_LANDING_DIR", raising=False)
    assert spark.land_files_step() == {"name": "land", "land_files": {
        "landing_dir": str(tmp_path / "landing"), "staging_dir": str(tmp_path / "spark" / "landing")}}
    monkeypatch.setenv("SPARK_LANDING_DIR", "shared/staging")
    assert spark.land_files_step(Path("other"))["land_files"] == {
        "landing_dir": str(tmp_path / "other"), "staging_dir": str(tmp_path / "shared" / "staging")}


def test_build_step_can_leave_unit_tests_out():
    assert spark.build_step()["args"] == ["build"]
    assert spark.build_step(full_refresh=True, unit_tests=False)["args"] == [
        "build", "--full-refresh", "--exclude-resource-type", "unit_test"]


def test_exported_tables_and_what_landed_are_read_from_the_output(tmp_path):
    export = spark.StepResult("export", 1.0, ["12:00:01  exported marts.profiles", "noise", "exported traits.traits__x"])
    assert spark.exported_tables(export, tmp_path) == {
        "marts.profiles": tmp_path / "marts" / "profiles", "traits.traits__x": tmp_path / "traits" / "traits__x"}
    landed = spark.StepResult("land", 1.0, ["landed 1 new file(s)", spark.LANDED_MARK + '{"files_skipped": 2}'])
    assert spark.landed(landed) == {"files_skipped": 2}


def test_missing_java_is_reported(monkeypatch):
    monkeypatch.setattr(spark.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert any("Java" in item for item in spark.missing_requirements())


def test_the_jobs_dbt_commands_pick_the_target(tmp_path, monkeypatch):
    """The Dagster job's dbt commands (the build, the verification) on the engine WAREHOUSE_TARGET names:
    Spark's build folders and profile target, with the settings dbt's Spark reads in the environment."""
    from orchestration.core import settings
    from orchestration.spark import job

    monkeypatch.delenv("WAREHOUSE_TARGET", raising=False)
    assert job.dbt_target() == (settings.DBT_PROJECT_DIR / "target", [])
    monkeypatch.setenv("WAREHOUSE_TARGET", "spark")
    monkeypatch.setenv("SPARK_WAREHOUSE_DIR", str(tmp_path / "spark"))
    monkeypatch.setattr(spark, "missing_requirements", lambda: [])
    for name in ("SPARK_LOCAL_IP", "PYSPARK_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    assert job.dbt_target() == (settings.DBT_PROJECT_DIR / "target" / "spark", ["--target", "spark"])
    assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1" and os.environ["PYSPARK_PYTHON"] == sys.executable
    assert job.pending_erasure() == tmp_path / "spark" / "erasure-pending.json"
    monkeypatch.setattr(spark, "missing_requirements", lambda: ["Java"])
    with pytest.raises(spark.SparkRunError, match="WAREHOUSE_TARGET=spark needs Java"):
        job.dbt_target()


def test_the_control_database_defaults_beside_sparks_warehouse(tmp_path, monkeypatch):
    """Not the DuckDB warehouse's file: `make run` then `make run-spark` work side by side."""
    from orchestration.core import settings

    monkeypatch.delenv("DUCKDB_PATH", raising=False)
    monkeypatch.setenv("SPARK_WAREHOUSE_DIR", str(tmp_path / "spark"))
    monkeypatch.setenv("WAREHOUSE_TARGET", "spark")
    assert settings.duckdb_path() == tmp_path / "spark" / "identity_warehouse.duckdb"
    monkeypatch.delenv("DUCKDB_PATH")
    monkeypatch.setenv("WAREHOUSE_TARGET", "duckdb")
    assert settings.duckdb_path() == settings.DEFAULT_DUCKDB_PATH
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "mine.duckdb"))
    monkeypatch.setenv("WAREHOUSE_TARGET", "spark")
    assert settings.duckdb_path() == tmp_path / "mine.duckdb"
