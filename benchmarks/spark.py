"""The build on Spark beside the job on DuckDB, per stage: ``python -m benchmarks.spark --people N``.

Spark's path is `orchestration/spark/build.py`: the landing files land in a local Spark's raw
tables, each read by a Spark task with the product's ingestion ("ingest"), then
``dbt build --target spark`` runs every model and data test (the unit tests
are left out: they do not depend on the data, and the DuckDB job runs them once per project
version). The dbt nodes are filed into the pipeline benchmark's stages by the same rules, from
Spark's ``run_results.json``; the peak is the resident memory of this process and its children (the
Spark JVM is one). The DuckDB column is read from the pipeline benchmark's report for the same
number of people (``results/pipeline-<N>.json``), not run again: run both back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.__main__ import GIB, RESULTS_DIR, git_commit, machine, node_table
from benchmarks.data import generated_landing
from benchmarks.pipeline import STAGES, Interval, TreeMemorySampler, dbt_intervals, union_seconds
from orchestration.core import settings
from orchestration.spark import build as spark


def spark_stage_seconds(land: float, build_wall: float, nodes: list[tuple[str, Interval]]) -> dict[str, float]:
    """Seconds per pipeline stage of a Spark build: the landing is "ingest", the dbt nodes
    go where the pipeline benchmark files them, and the time of the build when no node ran (dbt's
    start and parse, the gaps between nodes) is the overhead. The Spark profile runs two dbt
    threads, so two stages can share a second: they may add up to more than the wall time."""
    intervals = [interval for _, interval in nodes]
    seconds = {stage: union_seconds([i for i in intervals if i.stage == stage]) for stage in STAGES}
    seconds["ingest"] = land
    seconds["Dagster and dbt overhead"] = max(0.0, build_wall - union_seconds(intervals))
    return seconds


def run_on_spark(landing: Path, workdir: Path, spark_env: dict[str, str]) -> dict:
    """Land ``landing`` in a fresh local Spark under ``workdir`` and build there."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    database = workdir / settings.DEFAULT_DUCKDB_PATH.name
    os.environ.update({"DUCKDB_PATH": str(database), "SPARK_WAREHOUSE_DIR": str(workdir / "spark"), **spark_env})
    sampler = TreeMemorySampler(os.getpid())
    sampler.start()
    try:
        started = time.monotonic()
        steps = spark.run_steps([spark.land_files_step(landing), spark.build_step(unit_tests=False)])
        wall = time.monotonic() - started
    finally:
        sampler.stop()
    nodes = dbt_intervals(json.loads((settings.DBT_PROJECT_DIR / spark.TARGET_PATH / "run_results.json").read_text()))
    seconds_by_node = {unique_id: interval.end - interval.start for unique_id, interval in nodes}
    return {
        "wall_seconds": wall,
        "steps": {name: step.seconds for name, step in steps.items()},
        "stage_seconds": spark_stage_seconds(steps["land"].seconds, wall - steps["land"].seconds, nodes),
        "peak_rss_gib": sampler.peak() / GIB,
        "slowest_dbt_nodes": dict(sorted(seconds_by_node.items(), key=lambda item: -item[1])[:15]),
    }


def duckdb_figures(people: int, results_dir: Path = RESULTS_DIR) -> dict | None:
    """The pipeline benchmark's figures for ``people`` from its report (``pipeline-<N>.json``, or the
    default run's ``pipeline.json``), with the report's name under ``"report"``; none without one."""
    for path in (results_dir / f"pipeline-{people}.json", results_dir / "pipeline.json"):
        if path.exists():
            for scale in json.loads(path.read_text())["scales"]:
                if scale["people"] == people:
                    return {**scale, "report": path.with_suffix(".md").name}
    return None


def markdown(people: int, spark_run: dict, duckdb: dict | None, command: str) -> str:
    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}"

    def ratio(spark_value: float, duckdb_value: float | None) -> str:
        return f"{spark_value / duckdb_value:.1f}×" if duckdb_value else ""

    duck_stages = (duckdb or {}).get("stage_seconds", {})
    duck_wall = (duckdb or {}).get("wall_seconds")
    lines = [
        f"# Spark beside DuckDB, {people:,} people", "",
        f"Machine: {machine()}. Commit {git_commit()}. Command: `{command}`.", "",
        "Spark: a local Spark (`local[2]`, dbt-spark's session method) in one process; `ingest` on Spark is the "
        f"landing in Spark, each file read by a Spark task with the product's ingestion ({spark_run['steps']['land']:.1f} s); "
        "the reconciliation checks "
        "and audience exports are the Dagster job's, on DuckDB only. Spark's stages can overlap (two dbt threads; DuckDB's run has one). "
        "DuckDB: the pipeline benchmark's run of the same people"
        + (f" ([{duckdb['report']}]({duckdb['report']}))." if duckdb else ": no report for this number of people."),
        "",
        "| stage | DuckDB, s | Spark, s | Spark / DuckDB |", "| --- | ---: | ---: | ---: |",
    ]
    for stage in STAGES:
        value = spark_run["stage_seconds"][stage]
        spark_cells = (("not on Spark", "") if stage in ("checks", "exports")
                       else (f"{value:.1f}", ratio(value, duck_stages.get(stage))))
        lines.append(f"| {stage} | {cell(duck_stages.get(stage))} | {' | '.join(spark_cells)} |")
    lines.append(f"| **wall** | {cell(duck_wall)} | {spark_run['wall_seconds']:.1f} | "
                 f"{ratio(spark_run['wall_seconds'], duck_wall)} |")
    peak = (duckdb or {}).get("peak_rss_gib")
    lines += [f"| peak memory, GiB | {cell(peak)} | {spark_run['peak_rss_gib']:.1f} | |", "",
              "Spark's slowest dbt nodes:", "", *node_table(spark_run["slowest_dbt_nodes"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="for the Spark build, e.g. SPARK_DRIVER_MEMORY=8g")
    parser.add_argument("--workdir", default=str(settings.PROJECT_ROOT / "data" / "bench"))
    parser.add_argument("--out", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    missing = spark.missing_requirements()
    if missing:
        parser.error("Spark needs " + " and ".join(missing))
    settings.quiet_telemetry()
    workdir, out = Path(args.workdir), Path(args.out)
    landing = generated_landing(workdir, args.people)
    spark_run = run_on_spark(landing, workdir / f"spark-{args.people}", dict(item.split("=", 1) for item in args.env))
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.spark " + " ".join(sys.argv[1:] if argv is None else argv)
    report = markdown(args.people, spark_run, duckdb_figures(args.people, out), command)
    (out / f"spark-{args.people}.md").write_text(report)
    (out / f"spark-{args.people}.json").write_text(json.dumps({"people": args.people, **spark_run}, indent=2) + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
