"""The Spark target's plumbing, without Spark: the steps handed to the worker and dbt, and what is
read back from their output."""

from __future__ import annotations

from pathlib import Path

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


def test_exported_tables_and_row_counts_are_read_from_the_output(tmp_path):
    export = spark.StepResult("export", 1.0, ["12:00:01  exported marts.profiles", "noise", "exported traits.traits__x"])
    assert spark.exported_tables(export, tmp_path) == {
        "marts.profiles": tmp_path / "marts" / "profiles", "traits.traits__x": tmp_path / "traits" / "traits__x"}
    count = spark.StepResult("count", 1.0, ['row_counts {"marts.profiles": 469}'])
    assert spark.counted_rows(count) == {"marts.profiles": 469}


def test_missing_java_is_reported(monkeypatch):
    monkeypatch.setattr(spark.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert any("Java" in item for item in spark.missing_requirements())
