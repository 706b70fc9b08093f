"""The real job on generated people, timed per stage, with the peak memory of its process tree.

The job runs as `identity-warehouse run` in a child process (as a user runs it), into a fresh
DuckDB file and a fresh DAGSTER_HOME. While it runs, the resident memory of the child and all its
descendants (dbt is one) is sampled. Afterwards the stages are read back from what the run
recorded: the Dagster steps (ingestion, exports) from the run's event log, every dbt model and test
from dbt's run_results.json. What the stages do not account for is Dagster's and dbt's own
overhead (start-up, parsing, event handling).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

from orchestration.core import settings
from orchestration.location.project import build_folder

# Stages in pipeline order; a dbt node goes to the first stage whose rule matches it.
STAGES = ["ingest", "staging", "identifiers and edges", "identity graph", "profiles", "traits", "audiences",
          "dbt tests", "checks", "exports", "Dagster and dbt overhead"]
IDENTIFIER_MODELS = {"int_identifiers", "int_identity_junk", "int_identity_nodes", "int_identity_edges"}
GRAPH_MODELS = {"int_identity_components", "int_profile_ids"}


def stage_of_dbt_node(unique_id: str) -> str:
    """The stage of a dbt node, from its unique id (`model.identity_warehouse.int_messages`)."""
    resource_type, _, name = unique_id.split(".", 2)
    if resource_type in {"test", "unit_test"}:
        return "dbt tests"
    if name.startswith("stg_") or name in {"int_messages", "int_message_copies", "int_message_duplicates"}:
        return "staging"
    if name in IDENTIFIER_MODELS:
        return "identifiers and edges"
    if name in GRAPH_MODELS:
        return "identity graph"
    if name.startswith("audience"):
        return "audiences"
    if name.startswith("traits__") or name == "profile_traits":
        return "traits"
    return "profiles"


def stage_of_step(step_key: str, check_steps: frozenset[str] = frozenset()) -> str:
    """The stage of a Dagster step; ``check_steps`` are the run's asset-check steps (the
    reconciliation checks), found by ``step_stages``."""
    if step_key.startswith("ingest"):
        return "ingest"
    if step_key.startswith("export"):
        return "exports"
    if step_key in check_steps:
        return "checks"
    return "Dagster and dbt overhead"  # the dbt step itself: its models are counted from run_results


@dataclass
class Interval:
    stage: str
    start: float  # unix seconds
    end: float


@dataclass
class RunMeasurement:
    people: int
    wall_seconds: float
    peak_rss_bytes: int
    stage_seconds: dict[str, float]
    stage_peak_rss_bytes: dict[str, int]
    lines_accepted: int
    exit_code: int
    dbt_nodes: dict[str, float] = field(default_factory=dict)
    up_to_date: bool = False  # the command found nothing to do and started no Dagster run

    @property
    def messages_per_second(self) -> float:
        return self.lines_accepted / self.wall_seconds if self.wall_seconds else 0.0


class TreeMemorySampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append((time.time(), total))
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        return max((rss for at, rss in self.samples if start <= at <= end), default=0)


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def dbt_intervals(run_results: dict) -> list[tuple[str, Interval]]:
    """(unique_id, interval) of every dbt node, from its compile start to its execute end."""
    intervals = []
    for result in run_results["results"]:
        timings = [t for t in result.get("timing", []) if t.get("started_at") and t.get("completed_at")]
        if not timings:
            continue
        start = min(_timestamp(t["started_at"]) for t in timings)
        end = max(_timestamp(t["completed_at"]) for t in timings)
        intervals.append((result["unique_id"], Interval(stage_of_dbt_node(result["unique_id"]), start, end)))
    return intervals


def union_seconds(intervals: list[Interval]) -> float:
    """Wall time covered by the intervals (dbt runs two threads: overlapping nodes count once)."""
    total, current_start, current_end = 0.0, None, None
    for interval in sorted(intervals, key=lambda i: i.start):
        if current_end is None or interval.start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = interval.start, interval.end
        else:
            current_end = max(current_end, interval.end)
    if current_end is not None:
        total += current_end - current_start
    return total


def step_stages(instance, run_id: str) -> dict[str, Interval]:
    """Each step of a run with its stage and time. A step that evaluated asset checks and
    materialized nothing is a check step (the dbt step does both: its tests are checks too)."""
    import dagster as dg

    def steps_with(event_type: dg.DagsterEventType) -> set[str]:
        return {record.step_key for record in instance.all_logs(run_id, of_type=event_type)}

    check_steps = frozenset(steps_with(dg.DagsterEventType.ASSET_CHECK_EVALUATION)
                            - steps_with(dg.DagsterEventType.ASSET_MATERIALIZATION))
    return {s.step_key: Interval(stage_of_step(s.step_key, check_steps), s.start_time, s.end_time)
            for s in instance.get_run_step_stats(run_id) if s.start_time and s.end_time}


def run_failure(instance, run_id: str) -> str | None:
    """Why a run is no figure (the steps that failed), or None when it succeeded. A check that
    failed does not fail the run: its figures stand, as the command's exit code 1 says."""
    import dagster as dg

    if instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS:
        return None
    failed = sorted(s.step_key for s in instance.get_run_step_stats(run_id) if s.status and s.status.name == "FAILURE")
    return f"steps failed: {', '.join(failed)}" if failed else "the run did not succeed"


def _step_intervals(dagster_home: Path, run_log: Path) -> tuple[str, list[Interval]]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run_id = instance.get_runs(limit=1)[0].run_id
        failure = run_failure(instance, run_id)
        if failure:
            raise RuntimeError(f"the run failed ({failure}); see {run_log}")
        return run_id, list(step_stages(instance, run_id).values())


def _run_results(run_id: str) -> dict:
    """The run's dbt results; none when it started no dbt build (nothing to build)."""
    try:
        return json.loads((build_folder(run_id) / "run_results.json").read_text())
    except FileNotFoundError:
        return {"results": []}


def _lines_accepted(database: Path) -> int:
    import duckdb

    if not database.exists():
        return 0
    with duckdb.connect(str(database), read_only=True) as conn:
        return int(conn.execute("select coalesce(sum(lines_accepted), 0) from raw.loaded_files").fetchone()[0])


def run_pipeline(landing: Path, workdir: Path, people: int, fresh: bool = True,
                 extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> RunMeasurement:
    """Run `identity-warehouse run ARGS` once into the warehouse under `workdir` (a new one when
    `fresh`), and measure it. `lines_accepted` counts the lines this run accepted."""
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(settings.PROJECT_ROOT / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    database = workdir / settings.DEFAULT_DUCKDB_PATH.name
    lines_before = _lines_accepted(database)
    env = {
        **os.environ,
        "LANDING_DIR": str(landing), "DUCKDB_PATH": str(database), "DAGSTER_HOME": str(dagster_home),
        "EXPORT_DIR": str(workdir / "exports"), "DAGSTER_DISABLE_TELEMETRY": "true",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra_env or {}),
    }
    command = [str(Path(sys.executable).with_name("identity-warehouse")), "run", *args]
    started = time.time()
    with (workdir / "run.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeMemorySampler(process.pid)
        sampler.start()
        exit_code = process.wait()
        sampler.stop()
    ended = time.time()
    if exit_code not in (0, 1):  # 1: a step failed (said below), or a check failed or warned
        raise RuntimeError(f"the run failed ({exit_code}); see {workdir / 'run.log'}")

    up_to_date = "up to date: " in (workdir / "run.log").read_text()
    run_id, steps = _step_intervals(dagster_home, workdir / "run.log") if not up_to_date else (None, [])
    nodes = dbt_intervals(_run_results(run_id)) if run_id else []
    intervals = [interval for interval in steps if interval.stage != "Dagster and dbt overhead"]
    intervals += [interval for _, interval in nodes]
    stage_seconds = {stage: union_seconds([i for i in intervals if i.stage == stage]) for stage in STAGES}
    stage_seconds["Dagster and dbt overhead"] = max(0.0, (ended - started) - sum(stage_seconds.values()))
    stage_peaks = {stage: max((sampler.peak(i.start, i.end) for i in intervals if i.stage == stage), default=0)
                   for stage in STAGES}

    lines_accepted = _lines_accepted(database) - lines_before
    return RunMeasurement(
        people=people, wall_seconds=ended - started, peak_rss_bytes=sampler.peak(), stage_seconds=stage_seconds,
        stage_peak_rss_bytes=stage_peaks, lines_accepted=int(lines_accepted), exit_code=exit_code,
        dbt_nodes={unique_id: interval.end - interval.start for unique_id, interval in nodes}, up_to_date=up_to_date,
    )
