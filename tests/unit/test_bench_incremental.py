"""The pipeline benchmark's incremental runs: each on a fresh copy of one full run (no job is run here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import benchmarks.__main__ as bench
from benchmarks.pipeline import STAGES, RunMeasurement


@pytest.fixture
def fake_runs(monkeypatch, tmp_path):
    """run_pipeline replaced by a fake that appends to a file in the warehouse folder, as a run
    writes to its DuckDB file; each call's wall time is the next figure of `walls`."""
    calls: list[dict] = []
    walls = iter([300.0, 40.0, 30.0, 50.0, 20.0])

    def run_pipeline(landing: Path, workdir: Path, people: int, fresh: bool = True, extra_env=None):
        if fresh and workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        warehouse = workdir / "warehouse"
        before = warehouse.read_text() if warehouse.exists() else ""
        warehouse.write_text(before + landing.name + "\n")
        calls.append({"landing": landing.name, "workdir": workdir, "found": before, "env": extra_env})
        wall = next(walls)
        return RunMeasurement(people=people, wall_seconds=wall, peak_rss_bytes=1,
                              stage_seconds=dict.fromkeys(STAGES, wall / 10), stage_peak_rss_bytes={},
                              lines_accepted=7, exit_code=0, dbt_nodes={"model.p.m": wall / 2})

    def landing_with_increment(workdir: Path, people: int, share: float):
        return tmp_path / "base", tmp_path / "with-increment"

    monkeypatch.setattr(bench, "run_pipeline", run_pipeline)
    monkeypatch.setattr(bench, "landing_with_increment", landing_with_increment)
    monkeypatch.setattr(bench, "git_commit", lambda: "abc1234")
    return calls


def test_every_incremental_run_starts_from_the_full_run_at_the_same_path(fake_runs, tmp_path):
    result = bench.incremental_runs(tmp_path / "work", 1000, 0.01, repeats=3, run_env={"DBT_THREADS": "1"})

    full, *increments = fake_runs
    assert full["landing"] == "base" and full["found"] == ""
    assert [call["landing"] for call in increments] == ["with-increment"] * 3
    # each increment found the full run's warehouse, not an earlier increment's, where the full run left it
    assert all(call["found"] == "base\n" and call["workdir"] == full["workdir"] for call in increments)
    assert all(call["env"] == {"DBT_THREADS": "1"} for call in fake_runs)
    assert result["wall_seconds_all"] == [40.0, 30.0, 50.0] and result["wall_seconds"] == 40.0
    assert result["share_of_full"] == pytest.approx(40.0 / 300.0)
    assert result["full_run_commit"] == "abc1234" and result["runs"] == 3 and result["new_people"] == 10
    assert result["stage_seconds"]["ingest"] == pytest.approx(4.0)


def test_a_kept_full_run_is_reused_only_when_asked(fake_runs, tmp_path):
    workdir = tmp_path / "work"
    bench.incremental_runs(workdir, 1000, 0.01, repeats=1, run_env={})
    record = json.loads((workdir / "run-incremental-full" / "full-run.json").read_text())
    assert record == {"wall_seconds": 300.0, "commit": "abc1234"}

    reused = bench.incremental_runs(workdir, 1000, 0.01, repeats=1, run_env={}, reuse_full_run=True)
    assert [call["landing"] for call in fake_runs] == ["base", "with-increment", "with-increment"]
    assert reused["full_wall_seconds"] == 300.0 and reused["wall_seconds"] == 30.0
    assert not (workdir / "run-incremental" / "full-run.json").exists(), "the record stays with the snapshot"

    bench.incremental_runs(workdir, 1000, 0.01, repeats=1, run_env={})
    assert [call["landing"] for call in fake_runs][-2:] == ["base", "with-increment"], "a new full run when not asked"


def test_without_matplotlib_the_report_is_written_without_its_chart(monkeypatch, tmp_path, capsys):
    """Before: `python -m benchmarks` without the `bench` extra ran for many minutes, then died on the
    chart's import, after the report had been written with a link to a chart that did not exist."""
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # its import raises ImportError
    scale = {"people": 1000, "wall_seconds": 10.0, "wall_seconds_all": [10.0], "peak_rss_gib": 1.0,
             "lines_accepted": 12000, "messages_per_second": 1200.0, "slowest_dbt_nodes": {"model.p.m": 5.0},
             "stage_seconds": dict.fromkeys(STAGES, 1.0), "stage_peak_rss_gib": dict.fromkeys(STAGES, 0.5)}
    assert bench.chart([scale], tmp_path / "stages.png") is False
    assert "matplotlib is missing" in capsys.readouterr().out and not (tmp_path / "stages.png").exists()
    assert "stages.png" not in bench.markdown([scale], None, None, "python -m benchmarks", charted=False)
    assert "stages.png" in bench.markdown([scale], None, None, "python -m benchmarks")
