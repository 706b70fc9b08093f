"""Faults and concurrency, with real processes: ``identity-warehouse run`` as users start it.

- Two runs started at once on one DuckDB file: both succeed, one after the other (the writer lock).
- A run SIGKILLed inside the transaction of an ingested file, then a run SIGKILLed in the middle of
  ``dbt build`` (after the incremental ``int_profile_ids`` was written), then a normal run: every
  mart holds the same rows as after the uninterrupted runs.
- The same with a persistent Dagster home, as ``make run`` has (the project's dagster.yaml and its
  ``duckdb`` pool of one slot): a run killed mid-build (its whole process group, then its parent
  process alone) never blocks the next, which completes with the marts of an uninterrupted run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pytest

from orchestration.core import settings
from orchestration.landing.ingestion import discover_landing_files
from orchestration.landing.sources import registered_sources
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME

CLI = [sys.executable, "-m", "orchestration.cli", "run"]
# Wall-clock columns: when a row was built or loaded, not what it says (a computed trait's as_of is
# the build's clock when no as_of var is given).
WALL_CLOCK_COLUMNS = {"loaded_at", "assigned_at", "built_at", "components_built_at", "changed_at", "updated_at",
                      "merged_at", "rejected_at", "exported_at", "as_of", "staged_at"}
KILL_INSIDE_FILE = 4  # SIGKILL inside the transaction of the 4th file
# Runs the command line with ingestion patched to die (SIGKILL, no clean-up) after writing the rows
# of one file and before its commit.
KILL_DURING_INGESTION = f"""
import os, signal, sys
from orchestration.landing import ingestion
real_write, calls = ingestion._write_events, []
def write_then_die(*args):
    result = real_write(*args)
    calls.append(1)
    if len(calls) == {KILL_INSIDE_FILE}:
        os.kill(os.getpid(), signal.SIGKILL)
    return result
ingestion._write_events = write_then_die
from orchestration.cli.main import main
sys.exit(main(["run"]))
"""
KILL_DBT_AFTER = "OK created sql incremental model intermediate.int_profile_ids"
# A model every build makes, a first one and one at another as_of with nothing new (which builds only
# what time changes: the trait groups and audiences), so that each of the runs killed one after
# another on the same warehouse dies in the middle of dbt build.
KILL_ANY_BUILD_AFTER = "OK created sql incremental model traits.traits__commerce"
# The as_of of the second killed run: before the sample's newest events, so its traits differ from
# the uninterrupted run's, which the run after it must not keep.
BACKFILL_AS_OF = "2024-05-01"
# dbt's line per model is on the console only with --verbose (or this variable): the kills wait for one.
VERBOSE = {"IDENTITY_WAREHOUSE_VERBOSE": "1"}


def run_env(database: Path, landing: Path, exports: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(LANDING_DIR=str(landing), DUCKDB_PATH=str(database), EXPORT_DIR=str(exports),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    return env


def landing_file_count(landing: Path) -> int:
    """The files a run lands: Segment events, contact lists and the registered sources' files."""
    return len(discover_landing_files(landing, registered_sources()))


def comparable(value: str | None) -> str | None:
    """A sum of doubles depends on the order parallel aggregation adds them in (256.96 or
    256.96000000000004): compare decimals to 12 significant digits."""
    if value is None or not re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", value):
        return value
    return f"{float(value):.12g}"


def marts_snapshot(database: Path) -> dict[str, list[tuple]]:
    """Every table of the schemas analysts read, sorted, without wall-clock columns."""
    tables = {}
    with duckdb.connect(str(database), read_only=True) as conn:
        for schema, table in conn.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
            "and table_schema in ('marts', 'audiences', 'traits') order by 1, 2").fetchall():
            columns = [c for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
                "order by ordinal_position", [schema, table]).fetchall() if c not in WALL_CLOCK_COLUMNS]
            select = ", ".join(f'"{c}"::varchar' for c in columns)
            rows = conn.execute(f'select {select} from "{schema}"."{table}"').fetchall()
            tables[f"{schema}.{table}"] = sorted((tuple(map(comparable, row)) for row in rows),
                                                 key=lambda row: [(v is None, v or "") for v in row])
    return tables


@pytest.fixture(scope="session")
def reliability_landing(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("reliability_landing")
    shutil.copytree(SEEDS, landing, dirs_exist_ok=True)
    return landing


@pytest.fixture(scope="session")
def concurrent_runs(tmp_path_factory, reliability_landing):
    """Two ``identity-warehouse run`` started together on one file; the warehouse is the baseline."""
    database = tmp_path_factory.mktemp("concurrent") / WAREHOUSE_FILE_NAME
    env = run_env(database, reliability_landing, database.parent / "exports")
    started = time.monotonic()
    processes = [subprocess.Popen(CLI, env=env, cwd=settings.PROJECT_ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    return {"database": database, "landing": reliability_landing, "returncodes": [p.returncode for p in processes],
            "outputs": outputs,
            "seconds": time.monotonic() - started, "marts": marts_snapshot(database)}


def test_two_runs_started_at_once_both_succeed_one_after_the_other(concurrent_runs):
    assert concurrent_runs["returncodes"] == [0, 0], "\n".join(o[-3000:] for o in concurrent_runs["outputs"])
    waited = [o for o in concurrent_runs["outputs"] if "waiting for another run to finish" in o]
    assert len(waited) == 1
    for output in concurrent_runs["outputs"]:
        assert "Could not set lock on file" not in output  # DuckDB's error when two processes write
    # One run landed the files and built; the other, after waiting, found nothing to do.
    files = landing_file_count(concurrent_runs["landing"])
    assert sorted(f"{files} new file(s), 0 already loaded" in o for o in concurrent_runs["outputs"]) == [False, True]
    assert sorted("up to date: nothing new landed" in o for o in concurrent_runs["outputs"]) == [False, True]


def test_the_console_of_a_run_shows_a_line_per_step_and_the_summary(concurrent_runs):
    """Not dbt's START and PASS lines for each of 131 models and tests (about 300 lines): those stay
    in the run's compute log in the UI. Warnings are shown in full, with the test and the reason."""
    # The run that comes second finds nothing to do: it says so, with the summary, in a few lines.
    ran = [output for output in concurrent_runs["outputs"] if "up to date: " not in output]
    assert len(ran) == 1, concurrent_runs["outputs"]
    for output in concurrent_runs["outputs"]:
        assert len(output.splitlines()) <= 40 and "profiles: " in output, output
        assert not [line for line in output.splitlines() if re.search(r"\d+ of \d+ (START|OK|PASS) ", line)], output
    warned = [output for output in ran if re.search(r"\d+ of \d+ WARN 3 no_junk_identifiers_detected", output)]
    assert warned, ran  # the warning itself
    for output in ran:
        assert re.search(r"Done\. PASS=\d+ WARN=[01] ERROR=0", output) and "profiles: " in output
        assert re.search(r"dbt's full log: \S+/dbt\.log$", output, re.M), output
        for step in ("ingest_landing_files", "identity_warehouse_dbt_models", "process_privacy_requests"):
            assert f" - {step} - " in output, step
    for output in warned:
        assert "Warning in test no_junk_identifiers_detected" in output and "Got 3 results" in output
        assert "WARNING: check marts/junk_identifiers:no_junk_identifiers_detected did not pass" in output


def test_a_build_of_an_unchanged_dbt_project_spends_no_time_on_column_metadata(concurrent_runs, interrupted_runs):
    """Each run has a Dagster instance of its own (no DAGSTER_HOME): the column schema and lineage
    come from the dbt project's target folder, not from the instance's history. No run prints a
    traceback for the model whose lineage sqlglot cannot derive."""
    built = [output for output in concurrent_runs["outputs"] if "up to date: " not in output]
    outputs = [*built, interrupted_runs["final_output"]]  # the last one builds a project built before
    spent = [re.search(r"column schema and lineage: ([\d.]+) s, (.*)", output) for output in outputs]
    assert all(spent), outputs
    reused = [float(match[1]) for match in spent if match[2].startswith("unchanged dbt project")]
    assert reused, [match[0] for match in spent]  # the later run, at least, found it
    print(f"column metadata of an unchanged project: {reused} s")
    assert max(reused) < 2.0
    for output in [*concurrent_runs["outputs"], interrupted_runs["final_output"]]:
        assert "Traceback" not in output and "sqlglot" not in output and "column lineage" not in output


@pytest.fixture(scope="session")
def interrupted_runs(tmp_path_factory, reliability_landing):
    database = tmp_path_factory.mktemp("interrupted") / WAREHOUSE_FILE_NAME
    env = run_env(database, reliability_landing, database.parent / "exports")
    record = {"database": database}

    killed = subprocess.run([sys.executable, "-c", KILL_DURING_INGESTION], env=env, cwd=settings.PROJECT_ROOT,
                            capture_output=True, text=True, timeout=900)
    record["ingestion_kill_returncode"] = killed.returncode
    with duckdb.connect(str(database), read_only=True) as conn:
        record["files_after_ingestion_kill"] = conn.execute("select count(*) from raw.loaded_files").fetchone()[0]
        record["marts_after_ingestion_kill"] = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts'").fetchone()[0]

    record["dbt_killed"] = kill_mid_build(env, True, after=KILL_DBT_AFTER)  # the CLI and its dbt child
    with duckdb.connect(str(database), read_only=True) as conn:
        record["marts_after_dbt_kill"] = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts'").fetchone()[0]

    final = subprocess.run(CLI, env=env, cwd=settings.PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    record["final_returncode"], record["final_output"] = final.returncode, final.stdout + final.stderr
    return record


def test_a_run_killed_during_ingestion_then_during_dbt_ends_like_an_uninterrupted_run(concurrent_runs, interrupted_runs):
    record = interrupted_runs
    assert record["ingestion_kill_returncode"] == -signal.SIGKILL
    # Killed inside the 4th file: the three before it were committed, the 4th rolled back.
    assert record["files_after_ingestion_kill"] == KILL_INSIDE_FILE - 1
    assert record["marts_after_ingestion_kill"] == 0
    killed = record["dbt_killed"]
    assert killed["seen"] and killed["returncode"] == -signal.SIGKILL and killed["outlived_parent"] == []
    assert record["final_returncode"] == 0, record["final_output"][-3000:]

    expected, actual = concurrent_runs["marts"], marts_snapshot(record["database"])
    assert sorted(actual) == sorted(expected)
    for table in expected:
        assert actual[table] == expected[table], table
    with duckdb.connect(str(record["database"]), read_only=True) as conn:
        assert conn.execute("select count(*), count(distinct file_path) from raw.loaded_files").fetchone() == (landing_file_count(concurrent_runs["landing"]),) * 2
        duplicated = conn.execute(
            "select count(*) from (select file_path, line_number from raw.tracks group by all having count(*) > 1)"
        ).fetchone()[0]
    assert duplicated == 0


def test_replaying_every_event_file_under_new_names_twice_changes_no_mart(concurrent_runs, reliability_landing,
                                                                        tmp_path_factory, dagster_instance):
    """At-least-once delivery: the same messages arrive again in new files (a re-sent batch, a
    restored bucket). Contact lists re-sent under their own name with the same content are skipped;
    under a new name a list is a new list, by design, so only event files are replayed here."""
    from orchestration.location.runner import run_build_warehouse
    from tests.conftest import environment

    landing = tmp_path_factory.mktemp("replay_landing")
    shutil.copytree(reliability_landing, landing, dirs_exist_ok=True)
    for copy in ("replay-1", "replay-2"):
        for path in sorted((reliability_landing / "events").rglob("*.jsonl*")):
            target = landing / "events" / copy / path.relative_to(reliability_landing / "events")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    database = concurrent_runs["database"]
    with environment(LANDING_DIR=landing, DUCKDB_PATH=database, EXPORT_DIR=database.parent / "exports"):
        outcome = run_build_warehouse(dagster_instance)
    assert outcome.ok, outcome
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("select count(*) from raw.loaded_files where file_path like 'events/replay-%'"
                            ).fetchone()[0] == 2 * 10
    actual = marts_snapshot(database)
    for table, rows in concurrent_runs["marts"].items():
        assert actual[table] == rows, table


def test_a_failed_dbt_build_leaves_the_warehouse_file_free(tmp_path):
    """A dbt build that fails (here: identity rules naming a source that does not exist) fails its
    step only, and the process can open the warehouse after it (the checks scheduled after the
    step, the command line's summary need it)."""
    import dagster as dg

    from orchestration.location.runner import run_build_warehouse
    from tests.conftest import environment

    landing = tmp_path / "landing" / "events"
    landing.mkdir(parents=True)
    (landing / "one.jsonl").write_text(
        '{"type": "track", "messageId": "m-1", "anonymousId": "a-1", "event": "Opened", '
        '"timestamp": "2024-01-01T00:00:00Z", "receivedAt": "2024-01-01T00:00:01Z"}\n')
    database = tmp_path / "warehouse" / WAREHOUSE_FILE_NAME
    broken_rules = {"identity_rules": {"identifier_types": {"user_id": {"priority": 1, "sources": ["nowhere.id"]}}}}
    instance = dg.DagsterInstance.ephemeral()
    with environment(LANDING_DIR=tmp_path / "landing", DUCKDB_PATH=database, EXPORT_DIR=tmp_path / "exports"):
        outcome = run_build_warehouse(instance=instance, run_config={
            "ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": broken_rules}}}})
    events = [record.dagster_event for record in instance.all_logs(outcome.run_id) if record.dagster_event]
    failed_steps = {event.step_key for event in events if event.event_type == dg.DagsterEventType.STEP_FAILURE}
    assert not outcome.success
    assert failed_steps == {"identity_warehouse_dbt_models"}
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("select count(*) from raw.tracks").fetchall() == [(1,)]


RERUN_TIMEOUT = 600  # a run of the sample takes about a minute; a blocked one never ends


def start_run(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], env=env, cwd=settings.PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_mid_build(env: dict, whole_group: bool, *args: str, after: str = KILL_ANY_BUILD_AFTER) -> dict:
    """Starts a run (with ``args``) and SIGKILLs it in the middle of ``dbt build``, once it printed
    ``after``: its process group (the CLI and dbt), or the CLI's process alone (as an OOM killer or a
    crash would). Waits up to 15 s for the processes it killed to be gone (those still alive are
    returned as ``outlived_parent``): the kernel frees their hold on the DuckDB file at their exit,
    which a busy machine can delay past the CLI's."""
    process = start_run({**env, **VERBOSE}, *args)
    timer = threading.Timer(RERUN_TIMEOUT, lambda: os.killpg(process.pid, signal.SIGKILL))
    timer.start()
    children: list[psutil.Process] = []
    seen = False
    for line in process.stdout:
        if after in line:
            seen = True
            children = psutil.Process(process.pid).children(recursive=True)
            if whole_group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                os.kill(process.pid, signal.SIGKILL)
            break
    timer.cancel()
    process.wait()
    process.stdout.close()
    _, alive = psutil.wait_procs(children, timeout=15)
    return {"seen": seen, "returncode": process.returncode, "dbt_children": len(children),
            "outlived_parent": alive}


@pytest.fixture(scope="session")
def runs_killed_with_a_persistent_home(tmp_path_factory, reliability_landing):
    root = tmp_path_factory.mktemp("killed_persistent_home")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(settings.PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    database = root / "warehouse" / WAREHOUSE_FILE_NAME
    env = {**run_env(database, reliability_landing, root / "exports"), "DAGSTER_HOME": str(home)}
    record = {"database": database, "home": home}
    survivors = []
    try:
        for kill in ("group", "parent"):
            # the second on a built warehouse: a backfill, or it would find nothing to do
            killed = kill_mid_build(env, kill == "group", *(("--as-of", BACKFILL_AS_OF) if kill == "parent" else ()))
            survivors += killed["outlived_parent"]
            rerun = start_run(env)
            started = time.monotonic()
            try:
                output = rerun.communicate(timeout=RERUN_TIMEOUT)[0]
            except subprocess.TimeoutExpired:  # blocked: what today's main does
                os.killpg(rerun.pid, signal.SIGKILL)
                output = rerun.communicate()[0]
            killed.update(rerun_returncode=rerun.returncode, rerun_seconds=time.monotonic() - started,
                          rerun_output=output)
            print(f"rerun after killing the {kill}: {killed['rerun_seconds']:.1f} s")
            record[kill] = killed
    finally:
        for process in survivors:
            process.kill()
    record["marts"] = marts_snapshot(database)
    instance = dg.DagsterInstance.from_config(str(home))
    record["runs"] = sorted(run.status.value for run in instance.get_runs())
    record["slots_held"] = instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
    return record


@pytest.mark.parametrize("kill", ["group", "parent"])
def test_a_run_killed_mid_build_never_blocks_the_next_with_a_persistent_dagster_home(
        kill, concurrent_runs, runs_killed_with_a_persistent_home):
    record = runs_killed_with_a_persistent_home
    killed = record[kill]
    assert killed["seen"] and killed["returncode"] == -signal.SIGKILL and killed["dbt_children"] >= 1
    assert killed["outlived_parent"] == []  # dbt died with the run: it holds the DuckDB file while it lives
    assert killed["rerun_returncode"] == 0, killed["rerun_output"][-3000:]
    assert "was killed without clean-up: marked failed, its concurrency slots freed" in killed["rerun_output"]
    assert killed["rerun_seconds"] < RERUN_TIMEOUT


def test_runs_killed_mid_build_leave_the_marts_of_an_uninterrupted_run_and_no_run_in_progress(
        concurrent_runs, runs_killed_with_a_persistent_home):
    record = runs_killed_with_a_persistent_home
    expected, actual = concurrent_runs["marts"], record["marts"]
    assert sorted(actual) == sorted(expected)
    for table in expected:
        assert actual[table] == expected[table], table
    assert record["runs"] == ["FAILURE", "FAILURE", "SUCCESS", "SUCCESS"]  # the killed runs were marked failed
    assert record["slots_held"] == []
