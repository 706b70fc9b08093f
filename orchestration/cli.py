"""``identity-warehouse``: the project's command line (``python -m orchestration.cli``)."""

from __future__ import annotations

import argparse
import sys

from orchestration import settings


def _run(_: argparse.Namespace) -> int:
    from orchestration.locking import writer_lock

    print(f"landing folder: {settings.landing_dir()}\nwarehouse:      {settings.duckdb_path()}", flush=True)
    with writer_lock(settings.duckdb_path()):  # the run and its summary, before another run starts
        return _run_and_summarise()


def _run_and_summarise() -> int:
    from orchestration.runner import run_build_warehouse
    from orchestration.warehouse import connect

    outcome = run_build_warehouse()
    if outcome.success:
        with connect(settings.duckdb_path(), read_only=True) as conn:
            rows = conn.execute(
                """
                select
                    (select count(*) from raw.loaded_files),
                    (select coalesce(sum(lines_accepted), 0) from raw.loaded_files),
                    (select count(*) from raw.rejected_records),
                    (select count(*) from marts.profile_events),
                    (select count(*) from marts.profile_identifiers),
                    (select count(*) from marts.profiles),
                    (select count(*) from marts.profiles where not is_anonymous)
                """
            ).fetchone()
        labels = ["files loaded", "lines accepted", "lines rejected", "profile_events", "profile_identifiers",
                  "profiles", "known profiles"]
        for label, value in zip(labels, rows):
            print(f"{label:>20}: {value}")
    for check in outcome.warned_checks:
        print(f"WARNING: check {check} did not pass")
    for check in outcome.failed_checks:
        print(f"ERROR: check {check} failed", file=sys.stderr)
    if not outcome.success:
        print(f"ERROR: run {outcome.run_id} failed (see the run's logs in the Dagster UI)", file=sys.stderr)
    return 0 if outcome.ok else 1


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from orchestration.generator import write_landing

    summary = write_landing(Path(args.out), args.people, seed=args.seed, days=args.days, files=args.files,
                            list_name=args.list_name)
    print(", ".join(f"{key} {value}" for key, value in summary.items()) + f" → {args.out}")
    return 0


def _accuracy(args: argparse.Namespace) -> int:
    """Generate people for each seed, run the real job on them, score every policy."""
    import os
    from pathlib import Path

    from orchestration.accuracy import evaluate, markdown
    from orchestration.generator import write_landing
    from orchestration.runner import run_build_warehouse

    workdir = Path(args.workdir).resolve()
    scores = {}
    for seed in args.seeds:
        landing, database = workdir / f"seed-{seed}" / "landing", workdir / f"seed-{seed}" / settings.DEFAULT_DUCKDB_PATH.name
        if not landing.exists():
            write_landing(landing, args.people, seed=seed)
        os.environ.update(LANDING_DIR=str(landing), DUCKDB_PATH=str(database))
        outcome = run_build_warehouse()
        if not outcome.ok:
            print(f"ERROR: the build for seed {seed} failed: {outcome}", file=sys.stderr)
            return 1
        scores[f"{args.people:,} people, seed {seed}"] = evaluate(database, landing)
    table = markdown(scores)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


def _explain(args: argparse.Namespace) -> int:
    """Runs the dbt macro `explain_identity` (one implementation for people and analysts)."""
    import json
    import subprocess

    settings.duckdb_path()  # exported for dbt's profile
    macro_args = {"identifier": args.identifier, **({"other": args.other} if args.other else {})}
    command = [settings.DBT_EXECUTABLE, "--quiet", "run-operation", "explain_identity", "--args",
               json.dumps(macro_args), "--profiles-dir", str(settings.DBT_PROFILES_DIR)]
    from orchestration.locking import writer_lock

    with writer_lock(settings.duckdb_path()):  # dbt opens the file: wait for a run that holds it
        return subprocess.run(command, cwd=settings.DBT_PROJECT_DIR).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="identity-warehouse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the main job: land → build → check (LANDING_DIR → DUCKDB_PATH)")
    run.set_defaults(handler=_run)
    gen = commands.add_parser("generate", help="write synthetic landing files (and their ground truth) to a folder")
    gen.add_argument("--people", type=int, default=300)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--days", type=int, default=30)
    gen.add_argument("--files", type=int, default=4, help="number of event files to spread the messages over")
    gen.add_argument("--list-name", default="crm_export", help="name of the contact list file")
    gen.add_argument("--out", required=True, help="landing folder to write into (events/, contacts/, truth/)")
    gen.set_defaults(handler=_generate)
    acc = commands.add_parser("accuracy", help="score identity resolution against generated ground truth")
    acc.add_argument("--people", type=int, default=10_000)
    acc.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    acc.add_argument("--workdir", default="data/accuracy", help="where the generated landing data and warehouses go")
    acc.add_argument("--out", help="also write the markdown table to this file")
    acc.set_defaults(handler=_accuracy)
    explain = commands.add_parser("explain", help="why an identifier is in its profile, or why two are one person")
    explain.add_argument("identifier", help="type:value, e.g. email:dana@example.com (as sent or normalised)")
    explain.add_argument("other", nargs="?", help="a second type:value: show the chain of links between the two")
    explain.set_defaults(handler=_explain)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
