"""`make bench`: the real job on generated people at several scales, and an incremental run.

    python -m benchmarks --people 100000 1000000 --repeats 3

Writes benchmarks/results/pipeline.md, pipeline.json and stages.png (stage times against scale).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import graphs, interactions
from benchmarks.data import generated_landing, landing_with_increment
from benchmarks.pipeline import STAGES, RunMeasurement, run_pipeline
from orchestration.core import settings

RESULTS_DIR = settings.PROJECT_ROOT / "benchmarks" / "results"
GIB = 1024 ** 3


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, {platform.system()} {platform.release()}"


def median_run(runs: list[RunMeasurement]) -> dict:
    """Medians over repeated runs: of the wall time, of each stage, of the peaks."""
    return {
        "people": runs[0].people,
        "runs": len(runs),
        "lines_accepted": runs[0].lines_accepted,
        "wall_seconds": statistics.median(r.wall_seconds for r in runs),
        "wall_seconds_all": [round(r.wall_seconds, 1) for r in runs],
        "peak_rss_gib": statistics.median(r.peak_rss_bytes for r in runs) / GIB,
        "messages_per_second": statistics.median(r.messages_per_second for r in runs),
        "stage_seconds": {s: statistics.median(r.stage_seconds[s] for r in runs) for s in STAGES},
        "stage_peak_rss_gib": {s: statistics.median(r.stage_peak_rss_bytes.get(s, 0) for r in runs) / GIB
                               for s in STAGES},
        "slowest_dbt_nodes": dict(sorted(
            ((node, statistics.median(r.dbt_nodes.get(node, 0.0) for r in runs)) for node in runs[0].dbt_nodes),
            key=lambda item: -item[1])[:12]),
    }


def node_table(seconds_by_node: dict[str, float]) -> list[str]:
    return ["| node | seconds |", "| --- | ---: |",
            *[f"| {node.split('.', 2)[-1][:90]} | {seconds:.1f} |" for node, seconds in seconds_by_node.items()]]


def markdown(scales: list[dict], incremental: dict | None, graph_table: str | None, command: str,
             waits: list[str] | None = None, charted: bool = True) -> str:
    lines = [
        "# Pipeline benchmark",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {machine()}.",
        f"Command: `{command}`. Medians of the runs given; each run is `identity-warehouse run` on a fresh",
        "warehouse; peak memory is the summed resident memory of the run's process tree (Dagster, dbt, DuckDB).",
        "",
        "| stage | " + " | ".join(f"{s['people']:,} people" for s in scales) + " |",
        "| --- | " + " | ".join("---:" for _ in scales) + " |",
    ]
    for stage in STAGES:
        cells = [f"{s['stage_seconds'][stage]:.1f} s" + (f" · {s['stage_peak_rss_gib'][stage]:.2f} GiB"
                                                        if s["stage_peak_rss_gib"][stage] else "")
                 for s in scales]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines += [
        "| **whole run** | " + " | ".join(f"**{s['wall_seconds']:.1f} s** (runs: {s['wall_seconds_all']})"
                                           for s in scales) + " |",
        "| peak memory | " + " | ".join(f"{s['peak_rss_gib']:.2f} GiB" for s in scales) + " |",
        "| messages accepted | " + " | ".join(f"{s['lines_accepted']:,}" for s in scales) + " |",
        "| messages per second | " + " | ".join(f"{s['messages_per_second']:,.0f}" for s in scales) + " |",
        "",
        *(["![stage times against scale](stages.png)", ""] if charted else []),
        f"Slowest dbt models and tests at {scales[-1]['people']:,} people (seconds, from dbt's run_results.json):",
        "",
        *node_table(scales[-1]["slowest_dbt_nodes"]),
    ]
    if waits:
        lines += ["", *waits]
    if graph_table:
        lines += [
            "",
            "## The identity-graph step against its peers, on each warehouse's own edge list",
            "",
            "The project's connected components (the dbt macro, timed inside dbt), scipy's",
            "`csgraph.connected_components` (in memory: the lower bound), Splink's",
            "`cluster_pairwise_predictions_at_threshold` on DuckDB, a recursive CTE in DuckDB.",
            "",
            graph_table,
        ]
    if incremental:
        lines += [
            "",
            "## Incremental run",
            "",
            f"After a full run on {incremental['people']:,} people (commit {incremental['full_run_commit']}), new files "
            f"with {incremental['new_people']:,} more people ({incremental['lines_accepted']:,} messages) arrive and the "
            f"job runs again, {incremental['runs']} time(s), each on a fresh copy of the full run's warehouse: "
            f"median **{incremental['wall_seconds']:.1f} s** (runs: {incremental['wall_seconds_all']}), "
            f"{incremental['share_of_full']:.0%} of the full run's {incremental['full_wall_seconds']:.1f} s.",
            "",
            "| stage | incremental run (median) |",
            "| --- | ---: |",
            *[f"| {stage} | {incremental['stage_seconds'][stage]:.1f} s |" for stage in STAGES],
            "",
            "Slowest dbt models and tests of the incremental run (median seconds):",
            "",
            *node_table(incremental["slowest_dbt_nodes"]),
        ]
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=settings.PROJECT_ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def incremental_runs(workdir: Path, people: int, share: float, repeats: int, run_env: dict[str, str],
                     reuse_full_run: bool = False) -> dict:
    """A full run on `people`, kept as a snapshot, then `repeats` runs that each find `share` × people
    new people in new files, each on a fresh copy of the snapshot. The copies lie where the full run
    built its warehouse, as a scheduled run finds it: same paths, same dbt profile, so dbt parses
    partially as it would in production. A kept full run of another version of the project makes
    every increment pay what a new version pays once (the dbt unit tests, column lineage)."""
    base, with_increment = landing_with_increment(workdir, people, share)
    warehouse, snapshot = workdir / "run-incremental", workdir / "run-incremental-full"
    record = snapshot / "full-run.json"
    if reuse_full_run and record.exists():
        full = json.loads(record.read_text())
    else:
        measured = run_pipeline(base, warehouse, people, extra_env=run_env)
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(warehouse, snapshot)
        full = {"wall_seconds": measured.wall_seconds, "commit": git_commit()}
        record.write_text(json.dumps(full) + "\n")
    runs = []
    for _ in range(repeats):
        shutil.rmtree(warehouse, ignore_errors=True)
        shutil.copytree(snapshot, warehouse, ignore=shutil.ignore_patterns(record.name))
        os.sync()  # the copy's gigabytes written back now, not while the run is timed
        runs.append(run_pipeline(with_increment, warehouse, people, fresh=False, extra_env=run_env))
    median = median_run(runs)
    return {
        "people": people, "new_people": max(1, int(people * share)), "lines_accepted": runs[0].lines_accepted,
        "runs": len(runs), "wall_seconds": median["wall_seconds"], "wall_seconds_all": median["wall_seconds_all"],
        "full_wall_seconds": full["wall_seconds"], "full_run_commit": full["commit"],
        "share_of_full": median["wall_seconds"] / full["wall_seconds"], "stage_seconds": median["stage_seconds"],
        "slowest_dbt_nodes": median["slowest_dbt_nodes"],
    }


def chart(scales: list[dict], path: Path) -> bool:
    """Draws the stage times against scale; False (said) without matplotlib (the `bench` extra, which
    `make bench` installs): the figures are in the report all the same."""
    try:
        import matplotlib
    except ImportError:
        print("stage chart not drawn: matplotlib is missing (pip install -e '.[bench]')")
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    labels = [f"{s['people']:,}" for s in scales]
    bottoms = [0.0] * len(scales)
    for stage in STAGES:
        heights = [s["stage_seconds"][stage] for s in scales]
        axis.bar(labels, heights, bottom=bottoms, label=stage)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    axis.set_xlabel("people (about 12 messages each)")
    axis.set_ylabel("seconds (median)")
    axis.set_title("identity-warehouse: time per stage against scale")
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--incremental-share", type=float, default=0.01,
                        help="new people in the incremental run, as a share of the smallest scale (0: skip)")
    parser.add_argument("--incremental-repeats", type=int,
                        help="incremental runs, each on a fresh copy of the full run's warehouse (default: --repeats)")
    parser.add_argument("--reuse-full-run", action="store_true",
                        help="start the incremental runs from the warehouse of the full run an earlier call kept "
                             "(WORKDIR/run-incremental-full; the report names the commit that built it)")
    parser.add_argument("--no-graphs", dest="graphs", action="store_false",
                        help="skip timing the graph step's peers on each warehouse's edge list")
    parser.add_argument("--no-interactions", dest="interactions", action="store_false",
                        help="skip the sample builds, lookup and explain, and the run with nothing new")
    parser.add_argument("--graph-timeout", type=float, default=300.0)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of every run at scale, e.g. DUCKDB_MEMORY_LIMIT=4GB or DBT_THREADS=1 "
                             "(repeatable); the sample's builds run as `make run` does, without it")
    parser.add_argument("--workdir", default=str(settings.PROJECT_ROOT / "data" / "bench"))
    parser.add_argument("--out", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    settings.quiet_telemetry()
    run_env = dict(item.split("=", 1) for item in args.env)
    workdir, out = Path(args.workdir).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    scales, graph_results, landings = [], [], {}
    for people in args.people:
        landing = landings[people] = generated_landing(workdir, people)
        runs = []
        for repeat in range(args.repeats):
            runs.append(run_pipeline(landing, workdir / f"run-{people}", people, extra_env=run_env))
            print(f"{people:,} people, run {repeat + 1}: {runs[-1].wall_seconds:.1f} s, "
                  f"peak {runs[-1].peak_rss_bytes / GIB:.2f} GiB", flush=True)
        scales.append(median_run(runs))
        if args.graphs:
            graph_results.append(graphs.compare_on_warehouse(
                workdir / f"run-{people}" / settings.DEFAULT_DUCKDB_PATH.name, workdir / f"graphs-{people}",
                timeout=args.graph_timeout, repeats=args.repeats))

    sample = nothing_new = None
    if args.interactions:
        # as `make run` builds it (no --env); seconds each, so at least three for the median
        sample = interactions.sample_builds(workdir / "sample", max(3, args.repeats))
        largest = max(args.people)
        nothing_new = interactions.nothing_new(landings[largest], workdir / f"run-{largest}", largest, run_env)
        print(f"sample build {sample['build_seconds']:.1f} s, lookup {sample['lookup_seconds']:.2f} s, "
              f"nothing new at {largest:,} people {nothing_new['wall_seconds']:.1f} s "
              f"(the job: {nothing_new['job_seconds']:.1f} s)", flush=True)

    incremental = None
    if args.incremental_share:
        incremental = incremental_runs(workdir, min(args.people), args.incremental_share,
                                       args.incremental_repeats or args.repeats, run_env, args.reuse_full_run)
        print(f"incremental runs: {incremental['wall_seconds_all']} s (median {incremental['share_of_full']:.0%} "
              f"of a full run)")
    command = "make bench BENCH_ARGS='" + " ".join(argv if argv is not None else sys.argv[1:]) + "'"
    graph_table = graphs.markdown_table(graph_results) if graph_results else None
    waits = interactions.markdown(sample, nothing_new, scales[-1]["wall_seconds"]) if sample else None
    charted = chart(scales, out / "stages.png")
    (out / "pipeline.md").write_text(markdown(scales, incremental, graph_table, command, waits, charted))
    (out / "pipeline.json").write_text(json.dumps({"machine": machine(), "scales": scales, "incremental": incremental,
                                                   "sample": sample, "nothing_new": nothing_new}, indent=2) + "\n")
    print(f"report: {out / 'pipeline.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
