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


def test_a_landing_is_needed_only_for_new_files_or_work_left_over(tmp_path, monkeypatch):
    """The Spark landing's reasons to start Spark (job.why_land), read in the control database and
    beside the warehouse; with none, it lands nothing without Spark (not even Java is needed)."""
    import duckdb

    from orchestration.core.warehouse import quote_literal
    from orchestration.landing.ingestion import file_sha256
    from orchestration.landing.sources import registered_sources
    from orchestration.privacy.requests import ERASED_REASON
    from orchestration.spark import job, landing
    from orchestration.spark.tables import raw_table_shapes
    from tests.unit.test_spark_tables import _spark_table

    spark_dir, control, landed = tmp_path / "spark", tmp_path / "control" / "identity_warehouse.duckdb", tmp_path / "landing"
    for name, value in {"WAREHOUSE_TARGET": "spark", "SPARK_WAREHOUSE_DIR": spark_dir, "DUCKDB_PATH": control,
                        "LANDING_DIR": landed}.items():
        monkeypatch.setenv(name, str(value))
    (landed / "events").mkdir(parents=True)
    event = landed / "events" / "day-1.jsonl"
    event.write_text('{"type": "track"}\n')
    assert job.why_land() == ["nothing landed yet"]
    for name in raw_table_shapes(registered_sources()):  # the raw tables as the landing makes them, the file landed
        schema, table = name.split(".")
        _spark_table(spark_dir, schema, table, None if table != "loaded_files" else
                     f"select 'events/day-1.jsonl' as file_path, 0::bigint as size_bytes, "
                     f"null::timestamp as modified_at, {quote_literal(file_sha256(event))} as content_sha256", files=1)
    job.show_tables()
    assert job.why_land() == []
    monkeypatch.setattr(spark, "run_steps", lambda *args: pytest.fail("Spark started with nothing to land"))
    monkeypatch.setattr(spark, "missing_requirements", lambda: ["Java"])
    said = []
    assert job.land(said.append) == {"files_loaded": [], "files_skipped": 1, "accepted": {}, "rejected": {}, "erased": {}}
    assert said == ["nothing to land: the 1 landing file(s) are landed; Spark not started"]

    event.write_text('{"type": "track"}\n{"type": "identify"}\n')  # the file changed
    assert job.why_land() == ["1 landing file(s) not landed yet"]
    event.write_text('{"type": "track"}\n')
    (spark_dir / landing.LANDING_PENDING_FILE).write_text("[]")
    (spark_dir / landing.PENDING_ERASURE_FILE).write_text("{}")
    assert job.why_land() == ["a landing was cut short", "an erasure's lines wait to be removed"]
    (spark_dir / landing.LANDING_PENDING_FILE).unlink()
    (spark_dir / landing.PENDING_ERASURE_FILE).unlink()
    # an identifier erased since the landed rows were scanned (the landing scans them again), until scanned
    with duckdb.connect(str(control)) as conn:  # (the views' refresh made the privacy tables)
        conn.execute("insert into privacy.tombstones values ('email', 'h1', 'r1', now())")
    assert job.why_land() == ["identifiers were erased since the landed rows were last scanned"]
    (spark_dir / landing.ERASURES_SCANNED_FILE).write_text(landing.erased_identifiers([("email", "h1", ERASED_REASON)])[1])
    assert job.why_land() == []
    # a raw table gone from Spark's warehouse (a new source's, or removed by hand)
    (spark_dir / "warehouse" / "raw.db" / "tracks").rename(tmp_path / "tracks-gone")
    assert job.why_land() == ["a raw table is not made yet"]


def test_an_erasure_rebuilt_on_spark_is_recorded_as_a_build(tmp_path, monkeypatch):
    """Spark built every model again for an erasure: the build state says so (as after the dbt
    asset's builds), so the next run with nothing new builds nothing instead of every model once
    more; a rebuild that failed records nothing."""
    import json

    import duckdb

    from orchestration.core import settings
    from orchestration.location import build_state
    from orchestration.location.assets.privacy import erase_and_rebuild_on_spark
    from orchestration.location.project import dbt_project
    from orchestration.spark import job

    control = tmp_path / "identity_warehouse.duckdb"
    monkeypatch.setenv("DUCKDB_PATH", str(control))
    monkeypatch.setenv("WAREHOUSE_TARGET", "spark")
    dbt_vars = {"as_of": "2024-07-01"}

    def fails(dbt_vars, log):
        raise spark.SparkRunError("build on Spark failed")
    monkeypatch.setattr(job, "erase_and_rebuild", fails)
    with pytest.raises(spark.SparkRunError):
        erase_and_rebuild_on_spark(dbt_vars, print)
    with duckdb.connect(str(control)) as conn:
        assert build_state.read_recorded(conn) == {}
    monkeypatch.setattr(job, "erase_and_rebuild", lambda dbt_vars, log: 12.5)
    assert erase_and_rebuild_on_spark(dbt_vars, print) == 12.5
    manifest = json.loads(dbt_project.manifest_path.read_text())
    with duckdb.connect(str(control)) as conn:
        recorded = build_state.read_recorded(conn)
        plan, _ = build_state.plan_from_warehouse(conn, manifest, {**settings.dbt_vars(), **dbt_vars},
                                                  nothing_pending=True, outputs_current=lambda: True)
    assert set(recorded) == {node["name"] for node in build_state.models(manifest).values()}
    assert plan.builds_nothing
