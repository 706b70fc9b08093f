"""Landing data for the benchmarks: the project's generator, run in parallel shards, cached per size."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from orchestration.identity.generator import write_landing

BASE_SEED = 100


def _shard(args: tuple[Path, int, int, int]) -> dict:
    landing, people, seed, start_index = args
    return write_landing(landing, people, seed=seed, files=4, list_name=f"crm_export_{seed}", start_index=start_index)


def generated_landing(workdir: Path, people: int, shards: int | None = None, seed: int = BASE_SEED) -> Path:
    """``workdir/people-N/landing`` with N generated people, made once (shards in parallel, each
    with its own seed and range of person numbers) and reused while its summary file exists."""
    folder = workdir / f"people-{people}-seed-{seed}"
    landing, summary_file = folder / "landing", folder / "summary.json"
    if summary_file.exists():
        return landing
    if folder.exists():
        shutil.rmtree(folder)
    shards = shards or min(os.cpu_count() or 1, max(1, people // 50_000))
    sizes = [people // shards + (1 if shard < people % shards else 0) for shard in range(shards)]
    starts = [sum(sizes[:shard]) for shard in range(shards)]
    jobs = [(landing, size, seed + shard, start) for shard, (size, start) in enumerate(zip(sizes, starts))]
    with ProcessPoolExecutor(max_workers=shards) as pool:
        summaries = list(pool.map(_shard, jobs))
    totals = {key: sum(s.get(key, 0) for s in summaries) for key in summaries[0] if key != "seed"}
    summary_file.write_text(json.dumps({"people": people, "shards": shards, **totals}, indent=2) + "\n")
    return landing


def landing_with_increment(workdir: Path, people: int, share: float = 0.01, seed: int = BASE_SEED) -> tuple[Path, Path]:
    """(base landing, base + increment landing): the increment is ``share`` × N new people, who
    arrive in new files after a full run. Base files are hard links, not copies."""
    base = generated_landing(workdir, people, seed=seed)
    folder = workdir / f"people-{people}-seed-{seed}" / "with-increment"
    if not (folder / "summary.json").exists():
        if folder.exists():
            shutil.rmtree(folder)
        for path in base.rglob("*"):
            if path.is_file():
                target = folder / "landing" / path.relative_to(base)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
        summary = write_landing(folder / "landing", max(1, int(people * share)), seed=seed + 9000, files=1,
                                list_name=f"crm_export_{seed + 9000}", start_index=people)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return base, folder / "landing"
