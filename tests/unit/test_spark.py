"""The Spark target's plumbing, without Spark: the export of the DuckDB landing tables, the steps
handed to dbt, and what is read back from their output."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from orchestration.landing.ingestion import RAW_DDL
from orchestration.spark import build as spark


@pytest.fixture
def landing_database(tmp_path) -> Path:
    path = tmp_path / "landing.duckdb"
    with duckdb.connect(str(path)) as conn:
        for statement in RAW_DDL:
            conn.execute(statement)
        conn.execute("""insert into raw.tracks values ('m1', false, '{"type":"track","properties":{"revenue":42.5}}',
                        'l1', 'events/a.jsonl', 1, timestamp '2024-01-01 10:00:00.123456')""")
    return path


def test_landing_tables_are_exported_with_spark_types_and_json_as_text(landing_database, tmp_path):
    tables = {t["name"]: t for t in spark.export_raw_tables(landing_database, tmp_path / "out")}
    assert {"tracks", "identifies", "contacts", "loaded_files", "rejected_records"} <= set(tables)
    tracks = tables["tracks"]
    assert tracks["columns"] == [["message_id", "string"], ["message_id_is_derived", "boolean"],
                                 ["payload", "string"], ["load_id", "string"], ["file_path", "string"],
                                 ["line_number", "bigint"], ["loaded_at", "timestamp"]]
    with duckdb.connect() as conn:
        row = conn.execute(f"select payload, typeof(payload), loaded_at from '{tracks['path']}'").fetchone()
    assert row[0] == '{"type":"track","properties":{"revenue":42.5}}' and row[1] == "VARCHAR"
    assert str(row[2]) == "2024-01-01 10:00:00.123456"


def test_land_step_hands_every_table_to_the_dbt_operation(landing_database, tmp_path):
    step = spark.land_step(landing_database, tmp_path / "parquet")
    assert step["args"][:2] == ["run-operation", "land_raw_tables"]
    tables = json.loads(step["args"][3])["tables"]
    assert all(Path(t["path"]).is_file() and Path(t["path"]).parent == tmp_path / "parquet" for t in tables)


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
