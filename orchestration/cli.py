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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="identity-warehouse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the main job: land → build → check (LANDING_DIR → DUCKDB_PATH)")
    run.set_defaults(handler=_run)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
