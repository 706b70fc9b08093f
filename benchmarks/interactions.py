"""What a user waits for around the models (issue 28's table): a build of the sample, a run that finds
nothing new, the column metadata of a build, and `lookup` / `explain` on a built warehouse.

Each is timed the way a user meets it: `identity-warehouse ...` in a child process, medians of runs
made back to back. The identifier looked up is read from the warehouse and never printed.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.pipeline import RunMeasurement, run_pipeline
from orchestration.core import settings

SAMPLE_LANDING = settings.PROJECT_ROOT / "seeds"
# Logged by the dbt asset after every build (orchestration/location/assets/dbt.py).
METADATA_LOG = re.compile(r"column schema and lineage: ([0-9.]+) s")


def command_env(warehouse_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DUCKDB_PATH": str(warehouse_dir / settings.DEFAULT_DUCKDB_PATH.name),
        "DAGSTER_HOME": str(warehouse_dir / "dagster_home"), "EXPORT_DIR": str(warehouse_dir / "exports"),
        "DAGSTER_DISABLE_TELEMETRY": "true", "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def timed_command(arguments: list[str], env: dict[str, str], repeats: int) -> list[float]:
    """Wall seconds of `identity-warehouse ARGUMENTS`, once to warm caches, then `repeats` times."""
    command = [str(Path(sys.executable).with_name("identity-warehouse")), *arguments]
    seconds = []
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"`identity-warehouse {arguments[0]}` failed ({completed.returncode}): "
                               f"{completed.stderr[-2000:]}")
        if attempt:
            seconds.append(time.perf_counter() - started)
    return seconds


def metadata_seconds(dagster_home: Path) -> float | None:
    """The column metadata's share of the latest run, from the dbt asset's log line."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        for entry in instance.all_logs(run.run_id):
            found = METADATA_LOG.search(entry.user_message or "")
            if found:
                return float(found.group(1))
    return None


def a_known_identifier(database: Path) -> tuple[str, str]:
    """(type, value) of the identifier of the profile with the most identifiers (a lookup's worst case)."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as conn:
        identifier_type, value = conn.execute("""
            with sizes as (select profile_id, count(*) as identifiers from marts.profile_identifiers group by 1)
            select identifier_type, identifier_value from marts.profile_identifiers
            join sizes using (profile_id)
            order by identifiers desc, profile_id, identifier_type, identifier_value limit 1
        """).fetchone()
    return identifier_type, value


def people_tools(warehouse_dir: Path, repeats: int) -> dict:
    """Warm `lookup` and `explain` medians on a built warehouse."""
    env = command_env(warehouse_dir)
    identifier_type, value = a_known_identifier(warehouse_dir / settings.DEFAULT_DUCKDB_PATH.name)
    lookup = timed_command(["lookup", "--no-graph", "--type", identifier_type, value], env, repeats)
    explain = timed_command(["explain", f"{identifier_type}:{value}"], env, repeats)
    return {"lookup_seconds": statistics.median(lookup), "lookup_seconds_all": [round(s, 2) for s in lookup],
            "explain_seconds": statistics.median(explain), "explain_seconds_all": [round(s, 2) for s in explain]}


def summary(run: RunMeasurement, workdir: Path) -> dict:
    return {"wall_seconds": run.wall_seconds, "stage_seconds": run.stage_seconds, "up_to_date": run.up_to_date,
            "metadata_seconds": None if run.up_to_date else metadata_seconds(workdir / "dagster_home")}


def nothing_new(landing: Path, workdir: Path, people: int, run_env: dict[str, str]) -> dict:
    """The command again on a built warehouse with the same landing files (it answers "up to date"),
    then the job itself (`--force`: what a run from the UI or the schedule pays, no model built)."""
    plain = summary(run_pipeline(landing, workdir, people, fresh=False, extra_env=run_env), workdir)
    forced = summary(run_pipeline(landing, workdir, people, fresh=False, extra_env=run_env, args=("--force",)), workdir)
    return {"people": people, **plain, "job_seconds": forced["wall_seconds"],
            "job_metadata_seconds": forced["metadata_seconds"]}


def sample_builds(workdir: Path, repeats: int) -> dict:
    """Builds of the sample as `make run` makes them (the project's settings, one Dagster instance
    kept across runs): the first in a new instance (dbt's unit tests run), then `repeats` more, each
    on a fresh warehouse; then a run with nothing new on the last, then lookup and explain on it."""
    first = summary(run_pipeline(SAMPLE_LANDING, workdir, 0), workdir)
    builds = []
    for _ in range(repeats):
        for built in [*workdir.glob(settings.DEFAULT_DUCKDB_PATH.name + "*"), workdir / "exports"]:
            shutil.rmtree(built) if built.is_dir() else built.unlink()
        builds.append(summary(run_pipeline(SAMPLE_LANDING, workdir, 0, fresh=False), workdir))
    again = nothing_new(SAMPLE_LANDING, workdir, 0, {})
    walls = [b["wall_seconds"] for b in builds]
    return {
        "first_build_seconds": first["wall_seconds"],
        "build_seconds": statistics.median(walls), "build_seconds_all": [round(w, 1) for w in walls],
        "build_metadata_seconds": [b["metadata_seconds"] for b in [first, *builds]],
        "nothing_new_seconds": again["wall_seconds"], "nothing_new_job_seconds": again["job_seconds"],
        "nothing_new_metadata_seconds": again["job_metadata_seconds"],
        **people_tools(workdir, repeats),
    }


def markdown(sample: dict, nothing_new: dict | None, full_seconds: float | None) -> list[str]:
    def seconds(values) -> str:
        return ", ".join("–" if v is None else f"{v:.1f}" for v in values)

    lines = [
        "## What a user waits for (issue 28)",
        "",
        "| what | measured | target |",
        "| --- | --- | --- |",
        f"| `lookup` (warm, the largest profile of the sample) | **{sample['lookup_seconds']:.2f} s** "
        f"(runs: {sample['lookup_seconds_all']}) | ≤ 1 s |",
        f"| `explain` (warm, the same identifier) | **{sample['explain_seconds']:.2f} s** "
        f"(runs: {sample['explain_seconds_all']}) | ≤ 1 s |",
        f"| build of the sample (`make run` on a fresh warehouse; the first in a new Dagster instance, which runs "
        f"dbt's unit tests) | **{sample['build_seconds']:.1f} s** (runs: {sample['build_seconds_all']}); "
        f"first {sample['first_build_seconds']:.1f} s | ≤ 20 s |",
        f"| column metadata and lineage per build (sample builds, then nothing new) | "
        f"{seconds(sample['build_metadata_seconds'])}; {seconds([sample['nothing_new_metadata_seconds']])} s | ≤ 2 s |",
        f"| the sample again with nothing new (`identity-warehouse run`: up to date; the job with `--force`) | "
        f"**{sample['nothing_new_seconds']:.1f} s**; {sample['nothing_new_job_seconds']:.1f} s | |",
    ]
    if nothing_new:
        share = f", {nothing_new['wall_seconds'] / full_seconds:.0%} of a full run" if full_seconds else ""
        lines.append(f"| a run with nothing new at {nothing_new['people']:,} people (`identity-warehouse run`: up to date; "
                     f"the job with `--force`, as the UI or the schedule runs it: no model built) | "
                     f"**{nothing_new['wall_seconds']:.1f} s**{share}; {nothing_new['job_seconds']:.1f} s | ≤ 10 s at 1 M |")
    return lines
