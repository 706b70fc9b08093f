"""The Spark benchmark's stages and report, from recorded figures (no Spark is started here)."""

from __future__ import annotations

import json

import benchmarks.spark as bench_spark
from benchmarks.pipeline import STAGES, dbt_intervals


def _node(unique_id: str, start: str, end: str) -> dict:
    return {"unique_id": unique_id, "timing": [{"name": "compile", "started_at": start, "completed_at": start},
                                                {"name": "execute", "started_at": start, "completed_at": end}]}


RUN_RESULTS = {"results": [
    _node("model.identity_warehouse.stg_segment__tracks", "2026-12-07T10:00:00Z", "2026-12-07T10:00:10Z"),
    # two threads: the overlapping second counts once
    _node("model.identity_warehouse.int_messages", "2026-12-07T10:00:09Z", "2026-12-07T10:00:12Z"),
    _node("model.identity_warehouse.int_identity_components", "2026-12-07T10:00:12Z", "2026-12-07T10:00:42Z"),
    _node("test.identity_warehouse.unique_profiles_profile_id.abc", "2026-12-07T10:00:42Z", "2026-12-07T10:00:44Z"),
    # a test on the other thread while staging ran: both stages count that second
    _node("test.identity_warehouse.not_null_stg_segment__tracks_message_id.def", "2026-12-07T10:00:11Z",
          "2026-12-07T10:00:13Z"),
]}


def test_stages_file_the_nodes_as_the_pipeline_benchmark_and_ingest_is_the_landing():
    seconds = bench_spark.spark_stage_seconds(land=15.0, build_wall=50.0, nodes=dbt_intervals(RUN_RESULTS))
    assert set(seconds) == set(STAGES)
    assert seconds["ingest"] == 15.0
    assert seconds["staging"] == 12.0
    assert seconds["identity graph"] == 30.0
    assert seconds["dbt tests"] == 4.0
    # the build's wall time when no node ran (dbt's start, parse, the gaps), not what the stages leave
    assert seconds["Dagster and dbt overhead"] == 6.0


def test_the_report_sets_each_stage_beside_duckdb_with_the_ratio(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_spark, "git_commit", lambda: "abc1234")
    (tmp_path / "pipeline-1000.json").write_text(json.dumps({"scales": [
        {"people": 10, "stage_seconds": {}}, {"people": 1000, "wall_seconds": 40.0, "peak_rss_gib": 1.5,
                                              "stage_seconds": {**dict.fromkeys(STAGES, 1.0), "identity graph": 3.0}}]}))
    duckdb = bench_spark.duckdb_figures(1000, tmp_path)
    assert duckdb["wall_seconds"] == 40.0 and duckdb["report"] == "pipeline-1000.md"
    assert bench_spark.duckdb_figures(2000, tmp_path) is None
    # the default run writes every scale into pipeline.json
    (tmp_path / "pipeline.json").write_text(json.dumps({"scales": [{"people": 2000, "wall_seconds": 70.0}]}))
    assert bench_spark.duckdb_figures(2000, tmp_path) == {"people": 2000, "wall_seconds": 70.0, "report": "pipeline.md"}

    spark_run = {"wall_seconds": 120.0, "steps": {"land": 15.0, "build": 100.0}, "peak_rss_gib": 5.8,
                 "stage_seconds": {**dict.fromkeys(STAGES, 2.0), "identity graph": 30.0},
                 "slowest_dbt_nodes": {"model.identity_warehouse.int_identity_components": 30.0}}
    report = bench_spark.markdown(1000, spark_run, duckdb, "python -m benchmarks.spark --people 1000")
    assert "| identity graph | 3.0 | 30.0 | 10.0× |" in report
    assert "| **wall** | 40.0 | 120.0 | 3.0× |" in report
    assert "| exports | 1.0 | not on Spark |  |" in report and "| checks | 1.0 | not on Spark |  |" in report
    assert "| peak memory, GiB | 1.5 | 5.8 | |" in report
    assert "| int_identity_components | 30.0 |" in report
    assert "Commit abc1234" in report and "(15.0 s)" in report and "[pipeline-1000.md](pipeline-1000.md)" in report

    alone = bench_spark.markdown(1000, spark_run, None, "python -m benchmarks.spark --people 1000")
    assert "| identity graph |  | 30.0 |  |" in alone and "no report for this number of people" in alone
