"""``identity-warehouse``: the project's command line (``python -m orchestration.cli``)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

from orchestration.core import settings

USAGE_ERROR, FAILURE = 2, 1  # exit codes: a command given wrongly (as argparse's own), a command that failed


class UsageError(Exception):
    """An argument that cannot be used: said in one line, exit code 2."""


class CommandFailed(Exception):
    """A command that cannot be done as things are (no warehouse yet, ...): said in one line, exit code 1."""


def _run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from orchestration.cli.console import quiet_stdout, verbose
    from orchestration.core.locking import writer_lock
    from orchestration.location.up_to_date import current_as_of

    dbt_vars = _run_vars(args.vars, args.as_of)
    os.environ["WAREHOUSE_TARGET"] = target = args.target or settings.warehouse_target()
    if target == "spark":
        from orchestration.spark.build import spark_dir

        print(f"landing folder: {settings.landing_dir()}\nspark:          {spark_dir()}\n"
              f"control:        {settings.duckdb_path()} (privacy requests, export log, views of Spark's tables)",
              flush=True)
    else:
        print(f"landing folder: {settings.landing_dir()}\nwarehouse:      {settings.duckdb_path()}", flush=True)
    with writer_lock(settings.duckdb_path()):  # the run and its summary, before another run starts
        if not args.force and (as_of := current_as_of(dbt_vars)) is not None:
            print("up to date: nothing new landed, no code changed, and no event crossed the edge of a window "
                  f"since the last run (as_of {as_of:%Y-%m-%d %H:%M:%S}); nothing to do (--force runs the job)")
            _print_counts()
            return 0
        # dbt's line per model and test stays in the run's log in the UI, not on the console
        with nullcontext() if args.verbose or verbose() else quiet_stdout():
            return _run_and_summarise(dbt_vars)


def _run_vars(text: str | None, as_of: str | None) -> dict:
    """The dbt vars of a run: ``--vars``, with ``--as-of`` as their ``as_of``; both targets hand them
    to the dbt build (the Dagster job's dbt_vars on DuckDB, ``--vars`` of dbt on Spark)."""
    from orchestration.core.dbt_args import check_vars

    try:
        dbt_vars = _parse_vars(text)
    except ValueError as error:
        raise UsageError(f"--vars: {error}") from None
    if as_of is not None:
        if dbt_vars.get("as_of") not in (None, as_of):
            raise UsageError(f"--as-of {as_of} and --vars as_of {dbt_vars['as_of']} disagree: give one")
        try:
            check_vars({"as_of": as_of})
        except ValueError as error:
            raise UsageError(f"--as-of: {str(error).replace('as_of must be', 'expected')}") from None
        dbt_vars["as_of"] = as_of
    return dbt_vars


def _parse_vars(text: str | None) -> dict:
    """``--vars``: dbt vars as a YAML or JSON object (as dbt takes them), checked as the job checks
    them (``as_of`` a date or timestamp)."""
    import yaml

    from orchestration.core.dbt_args import check_vars

    if not text:
        return {}
    example = "expected an object, e.g. '{\"as_of\": \"2024-06-01\"}'"
    try:
        dbt_vars = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(example) from None
    if not isinstance(dbt_vars, dict):
        raise ValueError(example)
    dbt_vars = json.loads(json.dumps(dbt_vars, default=str))  # a YAML date becomes its text, as dbt reads it
    check_vars(dbt_vars)
    return dbt_vars


def _run_and_summarise(dbt_vars: dict | None = None) -> int:
    from orchestration.location.runner import run_build_warehouse

    run_config = {"ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": dbt_vars}}}} if dbt_vars else None
    outcome = run_build_warehouse(run_config=run_config)
    if outcome.success:
        _print_counts()
    for check in outcome.warned_checks:
        print(f"WARNING: check {check} did not pass")
    for check in outcome.failed_checks:
        print(f"ERROR: check {check} failed", file=sys.stderr)
    if not outcome.success:
        print(f"ERROR: run {outcome.run_id} failed (see the run's logs in the Dagster UI)", file=sys.stderr)
    log = dbt_log_of(outcome.run_id)
    if log is not None:
        print(f"dbt's full log: {log}", file=sys.stdout if outcome.success else sys.stderr)
    return 0 if outcome.ok else 1


def _print_counts() -> None:
    """What the warehouse holds, after a run."""
    from orchestration.core.warehouse import connect

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


def dbt_log_of(run_id: str | None):
    """The dbt log of a run's build (every model and test, which the console leaves out), if it built."""
    from orchestration.location.project import build_folder

    try:
        log = build_folder(run_id) / "dbt.log" if run_id else None
    except FileNotFoundError:
        return None
    return log if log is not None and log.exists() else None


def _verify(args: argparse.Namespace) -> int:
    """Every data test over every row, and the reconciliation checks (the verify_warehouse job)."""
    from orchestration.cli.console import quiet_stdout
    from orchestration.location.runner import run_verify_warehouse

    try:
        dbt_vars = _parse_vars(args.vars)
    except ValueError as error:
        print(f"ERROR: --vars: {error}", file=sys.stderr)
        return 1
    print(f"warehouse: {settings.duckdb_path()}", flush=True)
    with quiet_stdout():
        outcome = run_verify_warehouse(dbt_vars=dbt_vars)
    for failure in outcome.failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    if not outcome.success:
        print(f"ERROR: verification run {outcome.run_id} failed", file=sys.stderr)
        return 1
    print("verified: every data test over every row, and the reconciliation checks, passed")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from orchestration.identity.generator import write_landing

    summary = write_landing(Path(args.out), args.people, seed=args.seed, days=args.days, files=args.files,
                            list_name=args.list_name)
    print(", ".join(f"{key} {value}" for key, value in summary.items()) + f" → {args.out}")
    return 0


def _accuracy(args: argparse.Namespace) -> int:
    """Generate people for each seed, run the real job on them, score every policy."""
    import os
    from pathlib import Path

    from orchestration.identity.accuracy import evaluate, markdown
    from orchestration.identity.generator import write_landing
    from orchestration.location.runner import run_build_warehouse

    workdir = Path(args.workdir).resolve()
    try:
        dbt_vars = _accuracy_vars(args)
    except ValueError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    # A warehouse per set of rules, beside the landing data they share (a build under other rules
    # would relink everything anyway).
    variant = f"rules-{hashlib.md5(json.dumps(dbt_vars, sort_keys=True).encode()).hexdigest()[:8]}" if dbt_vars else ""
    run_config = {"ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": dbt_vars}}}} if dbt_vars else None
    scores = {}
    for seed in args.seeds:
        landing = workdir / f"seed-{seed}" / "landing"
        database = workdir / f"seed-{seed}" / variant / settings.DEFAULT_DUCKDB_PATH.name
        if not landing.exists():
            write_landing(landing, args.people, seed=seed)
        database.parent.mkdir(parents=True, exist_ok=True)
        os.environ.update(LANDING_DIR=str(landing), DUCKDB_PATH=str(database))
        outcome = run_build_warehouse(run_config=run_config)
        if not outcome.ok:
            print(f"ERROR: the build for seed {seed} failed: {outcome}", file=sys.stderr)
            return 1
        scores[f"{args.people:,} people, seed {seed}"] = evaluate(database, landing)
    table = markdown(scores)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


def _accuracy_vars(args: argparse.Namespace) -> dict:
    """``--vars`` and ``--on-conflict TYPE=POLICY`` as dbt vars: the identity rules of the project
    with each named type's ``on_conflict`` set (checked as the rules are)."""
    from orchestration.identity.rules import IdentityRules

    dbt_vars = _parse_vars(args.vars)
    if args.on_conflict:
        rules = json.loads(json.dumps(dbt_vars.get("identity_rules") or settings.identity_rules()))
        for setting in args.on_conflict:
            type_name, _, policy = setting.partition("=")
            if type_name not in rules.get("identifier_types", {}):
                raise ValueError(f"--on-conflict: '{type_name}' is not an identifier type of the identity rules")
            rules["identifier_types"][type_name]["on_conflict"] = policy
        IdentityRules.parse(rules)
        dbt_vars["identity_rules"] = rules
    return dbt_vars


def _explain(args: argparse.Namespace) -> int:
    """Why an identifier is in its profile, or why two are one person (orchestration/people/explain.py:
    the dbt macro `explain_identity` in Python, read-only, no dbt process)."""
    from orchestration.people.explain import explain
    from orchestration.people.lookup import LookupProblem, open_warehouse

    try:
        rules = settings.identity_rules()
        with open_warehouse() as conn:
            lines = explain(conn, args.identifier, args.other, rules)
    except LookupProblem as problem:
        print(f"ERROR: {problem}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _lookup(args: argparse.Namespace) -> int:
    """Finds the profile(s) of any identifier and shows them (see orchestration/people/lookup.py)."""
    from pathlib import Path

    from orchestration.people.lookup import (
        LookupProblem,
        find,
        open_warehouse,
        read_profile,
        render_text,
        shown,
        write_graph,
    )

    value, identifier_type = args.value, args.type
    try:
        rules = settings.identity_rules()
        with open_warehouse() as conn:
            matches = find(conn, value, rules, identifier_type)  # the forms explain takes too
            profiles = list(dict.fromkeys(m["profile_id"] for m in matches))
            reports = [read_profile(conn, p, [m for m in matches if m["profile_id"] == p]) for p in profiles]
        if not matches:
            raise LookupProblem(f"no profile holds {shown(value)} (tried it as "
                                + (f"a {identifier_type.strip()}" if identifier_type else "every identifier type")
                                + ", normalised and as sent)")
        for report in reports:
            print(render_text(report))
            if not args.no_graph:
                for path in write_graph(report, Path(args.graph_dir) if args.graph_dir else None):
                    print(f"graph: {path}")
    except LookupProblem as problem:
        print(f"ERROR: {problem}", file=sys.stderr)
        return 1
    return 0


def _compact(args: argparse.Namespace) -> int:
    """Rewrites the DuckDB file without its free blocks (where erased rows' values linger)."""
    from orchestration.core.warehouse import compact

    if not settings.duckdb_path().exists():  # (DuckDB would make an empty one)
        raise CommandFailed(f"no warehouse at {settings.duckdb_path()}: run `identity-warehouse run` first "
                            "(or set DUCKDB_PATH)")
    before, after = compact(settings.duckdb_path())
    print(f"{settings.duckdb_path()}: {before / 1e6:.1f} MB → {after / 1e6:.1f} MB")
    return 0


def _add_source(args: argparse.Namespace) -> int:
    """Scaffolds a landing source from a sample file (see orchestration/landing/add_source.py)."""
    import shlex
    from pathlib import Path

    from orchestration.identity.rules import IdentityRules
    from orchestration.landing.add_source import plan_source, sample_copy_target, scaffold

    sample = Path(args.sample)
    try:
        pairs = {"--identifier": args.identifier, "--message-type": args.message_type}
        for option, items in pairs.items():
            if bad := [item for item in items if "=" not in item]:
                raise ValueError(f"{option} {bad[0]}: expected {'FIELD=TYPE' if option == '--identifier' else 'VALUE=TYPE'}")
        overrides = dict(item.rsplit("=", 1) for item in args.identifier)
        message_types = dict(item.rsplit("=", 1) for item in args.message_type)
        types = IdentityRules.parse(settings.identity_rules()).types
        plan = plan_source(args.name, sample, list(types), overrides, args.message_id, args.event_name,
                           args.timestamp, args.type_field, message_types)
        options = [f"--identifier={item}" for item in args.identifier]
        options += [f"--{name.replace('_', '-')}={value}" for name in ("event_name", "message_id", "timestamp", "type_field")
                    if (value := getattr(args, name))]
        options += [f"--message-type={item}" for item in args.message_type]
        command = "identity-warehouse add-source " + shlex.join([args.name, sample.name, *options])
        written = scaffold(plan, settings.DBT_PROJECT_DIR, settings.landing_dir(), sample, command,
                           copy_sample=not args.no_copy, update=args.update)
    except (ValueError, OSError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    print(f"landing source '{plan.name}' ({plan.format}); identifiers: "
          + ", ".join(f"{field} → {kind}" for field, kind in plan.identifiers.items()))
    print(f"  message id: {plan.message_id or '(derived from the content)'}; event name: "
          f"{plan.event_name or repr(plan.name)}; time: {plan.timestamp or '(load time)'}")
    print(f"  event name field: {plan.event_name_reason} (--event-name FIELD to choose another)")
    if plan.message_types:
        print("  message types: " + ", ".join(f"{plan.type_field} = {v} → {t}" for v, t in plan.message_types.items())
              + ", else track (--type-field, --message-type VALUE=TYPE to change)")
    for path in written:
        shown = path.relative_to(settings.PROJECT_ROOT) if path.is_relative_to(settings.PROJECT_ROOT) else path
        print(f"  wrote {shown}")
    if not args.no_copy and sample_copy_target(plan, settings.landing_dir(), sample, settings.PROJECT_ROOT) is None:
        print(f"NOTE: the sample was not copied: LANDING_DIR ({settings.landing_dir()}) is inside the repository, "
              "where a real export is one `git add` away from a commit. Put the source's files in "
              f"<your landing folder>/{plan.name}/ and run with LANDING_DIR=<your landing folder>")
    for kind in sorted(set(plan.identifiers.values()) - {"user_id", "anonymous_id"}):
        if kind not in types:
            print(f"NOTE: '{kind}' is not an identifier type yet: add it to vars: identity_rules: identifier_types "
                  f"in dbt_project.yml, e.g.\n    {kind}: {{priority: 2, max_per_profile: 1, normalize: lower, "
                  f"sources: [traits.{kind}]}}")
        elif not types[kind].reads_trait(kind):
            print(f"NOTE: add traits.{kind} to the sources of identifier type '{kind}' in dbt_project.yml")
    print("next: `make run` (or `identity-warehouse run`), then "
          "`identity-warehouse lookup VALUE` for one of its identifiers")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="identity-warehouse", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the main job: land → build → check (LANDING_DIR → DUCKDB_PATH)")
    run.add_argument("--target", choices=list(settings.WAREHOUSE_TARGETS), default=None,
                     help="the engine the job builds on: duckdb or spark (profiles.yml's `spark` target: Spark lands "
                     "the files and dbt builds there; DUCKDB_PATH keeps the privacy requests, the export log and "
                     "views of Spark's tables); default WAREHOUSE_TARGET, else duckdb")
    run.add_argument("--vars", help="dbt vars for the build, a YAML or JSON object (e.g. '{as_of: 2024-06-01}' "
                     "computes traits and audiences as of that day)")
    run.add_argument("--as-of", metavar="DATE|TIMESTAMP", help="compute traits, windows and audiences as of this "
                     "day or time (e.g. 2024-06-01 or 2024-06-01T09:30:00; the as_of var); default now. Both targets")
    run.add_argument("--force", action="store_true",
                     help="run the job even when nothing could change (no new file or request, no code change, "
                     "no event across a window's edge since the last run), which is said and skipped by default; "
                     "its build then builds what could have changed, which may be nothing")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="show dbt's line for every model and test (also IDENTITY_WAREHOUSE_VERBOSE=1); by default "
                     "the console shows a line per step, warnings and errors in full, and the summary")
    run.set_defaults(handler=_run)
    verify = commands.add_parser("verify", help="verify the whole warehouse: every dbt data test over every row and "
                                 "the reconciliation checks (a build tests the rows it wrote); exits non-zero on a "
                                 "failure")
    verify.add_argument("--vars", help="dbt vars, as for run")
    verify.set_defaults(handler=_verify)
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
    acc.add_argument("--on-conflict", action="append", default=[], metavar="TYPE=POLICY",
                     help="score under this stitching policy of an identifier type (junk, latest or first), "
                          "e.g. anonymous_id=latest; repeatable")
    acc.add_argument("--vars", help="dbt vars for the builds, a YAML or JSON object, e.g. other identity_rules")
    acc.set_defaults(handler=_accuracy)
    explain = commands.add_parser("explain", help="why an identifier is in its profile, or why two are one person")
    explain.add_argument("identifier", help="type:value, e.g. email:dana@example.com, or a bare value as lookup "
                         "takes it (as sent or normalised)")
    explain.add_argument("other", nargs="?", help="a second identifier: show the chain of links between the two")
    explain.set_defaults(handler=_explain)
    lookup = commands.add_parser("lookup", help="a person's profile from any identifier: identifiers, traits and "
                                 "their sources, computed traits, audiences, latest events, identity graph")
    lookup.add_argument("value", help="an e-mail (any case), a phone as typed, a user id, an anonymous id, ...; "
                        "or type:value, e.g. email:dana@example.com (as explain takes it), quoted or not")
    lookup.add_argument("--type", help="only this identifier type (default: every type of the identity rules)")
    lookup.add_argument("--graph-dir", help="where the graph is written (DOT, and SVG when Graphviz's dot is "
                        "installed); default: private/lookups/ beside the warehouse, owner-only")
    lookup.add_argument("--no-graph", action="store_true", help="print only")
    lookup.set_defaults(handler=_lookup)
    compact = commands.add_parser("compact", help="rewrite the DuckDB file with only its live data (a run that "
                                  "erased people does it itself; see docs/privacy.md)")
    compact.set_defaults(handler=_compact)
    add = commands.add_parser("add-source", help="scaffold a new landing source (raw table, staging model, "
                              "identifier mapping) from a sample CSV/TSV or JSON-lines file")
    add.add_argument("name", help="the source's name, snake_case (its raw table, folder and staging model)")
    add.add_argument("sample", help="a sample file: .csv, .tsv or .jsonl")
    add.add_argument("--identifier", action="append", default=[], metavar="FIELD=TYPE",
                     help="map a field to an identifier type (email, phone, user_id, anonymous_id or a custom "
                     "type); TYPE 'none' drops a field detected by its name. FIELD may go into JSON, also JSON held "
                     "in a CSV cell, and arrays: 'contexts.data[*].data.userId' ([*]: the first element that has "
                     "it). Repeatable")
    add.add_argument("--message-id", help="the field holding a message id (detected: message_id, event_id, ...)")
    add.add_argument("--event-name", help="the field holding the event name (detected: of event, event_name, action, "
                     "..., the one with the most specific names, not `unstruct`-like ones)")
    add.add_argument("--timestamp", help="the field holding the event time (detected: *_at, *timestamp, date, ...)")
    add.add_argument("--type-field", help="the field whose values make a record a page or screen view (detected: "
                     "the event fields, where a value is page_view, screen_view, ...)")
    add.add_argument("--message-type", action="append", default=[], metavar="VALUE=TYPE",
                     help="records whose --type-field is VALUE are messages of TYPE (page, screen or track); "
                     "repeatable; replaces the detected ones (page_view=page, screen_view=screen)")
    add.add_argument("--update", action="store_true", help="regenerate an existing source's mapping: rewrites its "
                     "registration and the files add-source wrote, unless its staging model was edited since")
    add.add_argument("--no-copy", action="store_true", help="do not copy the sample into LANDING_DIR/<name>/ "
                     "(never copied when LANDING_DIR is inside the repository, as the default seeds/ is)")
    add.set_defaults(handler=_add_source)
    for command in commands.choices.values():  # `identity-warehouse --debug run` and `... run --debug` alike
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the Python traceback of an error")
    args = parser.parse_args(argv)
    return _handled(args)


def _handled(args: argparse.Namespace) -> int:
    """Runs the command. An error is one line (or one per problem) on standard error, without a
    traceback unless --debug. Exit codes: 0 done, 1 failed, 2 given wrongly."""
    import os
    import traceback

    from orchestration.computed.schema import DefinitionError
    from orchestration.people.lookup import LookupProblem

    debug = getattr(args, "debug", False)
    try:
        return args.handler(args)
    except BrokenPipeError:  # the output piped into a program that stopped reading (`| head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's flush at exit would fail)
        return FAILURE
    except Exception as error:  # noqa: BLE001 (the one place an error becomes a message)
        if debug:
            traceback.print_exc()
        said = isinstance(error, (UsageError, CommandFailed, DefinitionError, LookupProblem))  # messages written for people
        lines = str(error).strip().splitlines() or [""]
        if not said:  # anything else: its kind and first line
            lines = [f"{type(error).__name__}: {lines[0]}".rstrip(": ")]
        for line in lines:
            print(f"ERROR: {line}", file=sys.stderr)
        if not said and not debug:
            print("(run again with --debug for the traceback)", file=sys.stderr)
        return USAGE_ERROR if isinstance(error, UsageError) else FAILURE


if __name__ == "__main__":
    sys.exit(main())
