"""``identity-warehouse``: the project's command line (``python -m orchestration.cli``)."""

from __future__ import annotations

import argparse
import sys

from orchestration import settings


def _run(_: argparse.Namespace) -> int:
    from orchestration.runner import run_build_warehouse
    from orchestration.warehouse import connect

    print(f"landing folder: {settings.landing_dir()}\nwarehouse:      {settings.duckdb_path()}")
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

    from orchestration.generator import generate, write_landing

    data = generate(args.people, seed=args.seed, days=args.days)
    write_landing(data, Path(args.out), files=args.files, list_name=args.list_name)
    print(f"{args.people} people, {len(data.messages)} messages, {len(data.contacts)} contact rows → {args.out}")
    return 0


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
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
