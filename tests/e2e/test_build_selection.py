"""A build selects what changed (orchestration/location/build_state.py).

- **Code.** In a copy of the dbt project, a staging model and a trait are edited after a first
  build; the next run, with no new file, rebuilds what the edits reach, and every model table then
  equals a build from scratch of the edited project on the same landing files, while the tables
  that hold history keep their rows.
- **Time.** A run with nothing new (the session's sample warehouse, second run), at a time that
  moved no event across a window's edge, builds nothing and leaves every table as a full run
  left it. Runs at chosen as_of on a copy of that warehouse: an earlier as_of (a backfill) and a
  later one that moves events across an edge build only the models that change as time passes;
  the same as_of again builds nothing.
- **Nothing to do.** ``identity-warehouse run`` on that copy answers "up to date" without starting
  Dagster, and runs the job when anything could change: a landing file, a privacy request, a
  changed var, another as_of, or a last run that did not finish well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest
import yaml

from orchestration.core import settings
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME, copy_dbt_project
from tests.e2e.conftest import SampleRuns, copy_built_warehouse, run_metadata

# Columns that say when a build happened, not what the data is (as in test_incremental_runs.py).
RUN_TIME_COLUMNS = {"loaded_at", "assigned_at", "built_at", "components_built_at", "changed_at", "updated_at",
                    "merged_at", "exported_at", "previous_profile_id", "fingerprint", "as_of", "copies_loaded_until",
                    "staged_at"}
# Tables that hold history: a build from scratch cannot have their rows, and no build may drop them.
HISTORY_TABLES = {"intermediate.int_profile_ids", "marts.profile_merges", "marts.audience_membership_history"}
MODEL_SCHEMAS = ("staging", "intermediate", "marts", "traits", "audiences")

# "a better event name": the edit a data engineer makes to a generated staging model
STAGING_MODEL = Path("models/staging/segment/stg_segment__tracks.sql")
RENAMED = ("Product Viewed", "Product Seen")
TRAIT_EDIT = ('where: [{property: revenue, op: ">=", value: 100}]', 'where: [{property: revenue, op: ">=", value: 50}]')


def _run(env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "orchestration.cli", "run"], cwd=settings.PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def _tables(database: Path) -> dict[str, pd.DataFrame]:
    """Every model table, as text, run-time columns left out, rows sorted."""
    with duckdb.connect(str(database), read_only=True) as conn:
        names = [name for (name,) in conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            f"where table_schema in ({', '.join(repr(s) for s in MODEL_SCHEMAS)}) order by 1").fetchall()]
        tables = {}
        for name in names:
            frame = conn.execute(f"select * from {name}").df()
            frame = frame[sorted(c for c in frame.columns if c not in RUN_TIME_COLUMNS)]
            frame = frame.apply(lambda column: column.round(9) if column.dtype.kind == "f" else column).astype(str)
            tables[name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return tables


# What the profile-id registry remembers: each identifier's profile, since when, and when that last
# changed (a build that re-reads a component stamps assigned_at and components_built_at anew).
REGISTRY = ("select identifier_type, identifier_value, profile_id, profile_first_seen_at, is_junk, changed_at "
            "from intermediate.int_profile_ids order by identifier_type, identifier_value")


def _history(database: Path) -> dict[str, pd.DataFrame]:
    """The history tables and the landing log, every column (their times are their history)."""
    with duckdb.connect(str(database), read_only=True) as conn:
        return {name: conn.execute(REGISTRY if name == "intermediate.int_profile_ids" else f"select * from {name}")
                .df().astype(str) for name in [*sorted(HISTORY_TABLES), "raw.loaded_files"]}


def _edit_staging_model(project: Path) -> None:
    path = project / STAGING_MODEL
    old, new = RENAMED
    path.write_text(
        f"select * replace (case when event_name = '{old}' then '{new}' else event_name end as event_name)\n"
        f"from (\n{path.read_text()}\n) as staged\n")


@pytest.fixture(scope="session")
def edited_project(tmp_path_factory):
    project = tmp_path_factory.mktemp("selection-project") / "dbt_project"
    copy_dbt_project(project)
    config = project / "dbt_project.yml"  # a fixed as_of: two builds minutes apart give the same windows
    config.write_text(config.read_text().replace("  as_of: null", "  as_of: '2024-06-01'"))
    landing = tmp_path_factory.mktemp("selection-landing")
    shutil.copytree(SEEDS, landing, dirs_exist_ok=True)
    database = tmp_path_factory.mktemp("selection-db") / WAREHOUSE_FILE_NAME
    env = {**os.environ, "DBT_PROJECT_DIR": str(project), "LANDING_DIR": str(landing), "DUCKDB_PATH": str(database),
           "EXPORT_DIR": str(tmp_path_factory.mktemp("selection-exports"))}
    env.pop("DAGSTER_HOME", None)
    _run(env)
    history_before = _history(database)

    _edit_staging_model(project)
    traits = project / "definitions" / "traits.yml"
    assert TRAIT_EDIT[0] in traits.read_text()
    traits.write_text(traits.read_text().replace(*TRAIT_EDIT))
    edited_run = _run(env)

    from_scratch = tmp_path_factory.mktemp("selection-db-scratch") / WAREHOUSE_FILE_NAME
    _run({**env, "DUCKDB_PATH": str(from_scratch), "EXPORT_DIR": str(tmp_path_factory.mktemp("scratch-exports"))})
    return {"edited": _tables(database), "from_scratch": _tables(from_scratch), "history_before": history_before,
            "history_after": _history(database), "output": edited_run.stdout + edited_run.stderr}


def test_an_edited_model_and_trait_reach_every_table_as_a_build_from_scratch(edited_project):
    edited, from_scratch = edited_project["edited"], edited_project["from_scratch"]
    assert sorted(edited) == sorted(from_scratch)
    assert {"marts.profile_events", "marts.profiles", "traits.traits__commerce"} <= set(edited)
    events = edited["marts.profile_events"]
    assert RENAMED[1] in set(events.event_name) and RENAMED[0] not in set(events.event_name)
    for name in sorted(set(edited) - HISTORY_TABLES):
        pd.testing.assert_frame_equal(edited[name], from_scratch[name], obj=name)


def test_the_tables_that_hold_history_keep_their_rows(edited_project):
    before, after = edited_project["history_before"], edited_project["history_after"]
    assert len(before["intermediate.int_profile_ids"]) > 0 and len(before["marts.audience_membership_history"]) > 0
    for name, rows in before.items():
        kept = rows.merge(after[name], how="left", indicator=True)
        assert (kept["_merge"] == "both").all(), f"{name} lost rows of its history"
    # the profile-id registry is the same registry: no id assigned anew
    pd.testing.assert_frame_equal(before["intermediate.int_profile_ids"], after["intermediate.int_profile_ids"])


def test_the_run_says_in_one_line_what_the_code_change_rebuilt(edited_project):
    lines = [line for line in edited_project["output"].splitlines() if "code changed: " in line]
    assert len(lines) == 1, edited_project["output"][-3000:]
    line = lines[0][lines[0].index("code changed: "):]
    changed, rebuilt = line.split("; ")[:2]
    assert changed == "code changed: stg_segment__tracks, traits__commerce"
    assert rebuilt.startswith("rebuilt from scratch: stg_segment__tracks, traits__commerce and ")
    assert rebuilt.endswith(" models downstream")
    assert "history kept: audience_membership_history, int_profile_ids, profile_merges" in line


def _time_dependent_models() -> set[str]:
    """From the definitions: the trait groups and audiences (windows count back from as_of), and
    the models that gather them."""
    definitions = settings.DEFINITIONS_DIR
    groups = yaml.safe_load((definitions / "traits.yml").read_text())["trait_groups"]
    audiences = yaml.safe_load((definitions / "audiences.yml").read_text())["audiences"]
    return ({f"traits__{group}" for group in groups} | {f"audience__{audience}" for audience in audiences}
            | {"profile_traits", "audience_members", "audience_condition_results", "audience_membership_history"})


def _dbt_models_built(run) -> set[str]:
    return {key.split("/")[-1] for key in run.metadata if key.split("/")[0] in MODEL_SCHEMAS}


def test_a_run_with_nothing_new_and_no_event_across_a_window_s_edge_builds_nothing(sample_runs: SampleRuns):
    first, second = sample_runs.first, sample_runs.second
    assert second.outcome.ok
    assert {"profile_events", "int_identifiers", "stg_segment__tracks"} <= _dbt_models_built(first)
    assert _dbt_models_built(second) == set() and second.dbt_log_events == set()
    # and every table is as a full run left it
    for name, table in first.tables.items():
        pd.testing.assert_frame_equal(table, second.tables[name], obj=name)
    # a file that lands makes the next run build everything again
    assert {"profile_events", "int_identifiers", "stg_segment__tracks"} <= _dbt_models_built(sample_runs.after_late_file)


@pytest.fixture(scope="session")
def runs_as_time_moves(sample_runs: SampleRuns, tmp_path_factory, dagster_instance) -> dict:
    """On a copy of the sample's first build (as_of: the clock then, years after its events): runs
    at as_of an hour after the newest event (a backfill), at that as_of again, and two days later
    (the newest events leave the one-day delay of cart_abandoners' funnel: edge 1)."""
    from orchestration.location.runner import run_build_warehouse

    warehouse = sample_runs.copy_of_first_build(tmp_path_factory.mktemp("time-moves"))
    with duckdb.connect(str(warehouse.database), read_only=True) as conn:
        newest = conn.execute("select max(event_at) from marts.profile_events where profile_id is not null").fetchone()[0]
    newest = newest.replace(microsecond=0)  # as_of goes to the var to the second
    runs = {}
    for name, as_of in (("backfill", newest + timedelta(hours=1)), ("same_as_of", newest + timedelta(hours=1)),
                        ("two_days_on", newest + timedelta(days=2, hours=1))):
        config = {"ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": {"as_of": f"{as_of:%Y-%m-%dT%H:%M:%S}"}}}}}
        with warehouse.environment():
            outcome = run_build_warehouse(dagster_instance, run_config=config)
        assert outcome.ok, (name, outcome)
        with duckdb.connect(str(warehouse.database), read_only=True) as conn:
            computed_at = {at for (at,) in conn.execute("select distinct as_of from traits.traits__commerce").fetchall()}
        runs[name] = SimpleNamespace(metadata=run_metadata(dagster_instance, outcome.run_id), as_of=as_of,
                                     tables=_tables(warehouse.database), computed_at=computed_at)
    runs["first"] = SimpleNamespace(metadata={}, tables=_tables(sample_runs.first_build.database))
    return runs


def test_time_that_moves_the_windows_builds_only_what_time_changes(runs_as_time_moves):
    runs = runs_as_time_moves
    assert _dbt_models_built(runs["backfill"]) == _time_dependent_models()
    assert _dbt_models_built(runs["two_days_on"]) == _time_dependent_models()
    for name in ("backfill", "two_days_on"):  # the identity and profile models are as the full run left them
        for table in ("marts.profiles", "marts.profile_identifiers", "marts.profile_events", "intermediate.int_profile_ids"):
            pd.testing.assert_frame_equal(runs[name].tables[table], runs["first"].tables[table], obj=(name, table))
    # the traits were computed at the as_of asked: every profile at the backfill's (an earlier one
    # recomputes all), and the profiles whose events time moved at the later one
    assert runs["backfill"].computed_at == {runs["backfill"].as_of}
    assert max(runs["two_days_on"].computed_at) == runs["two_days_on"].as_of


def test_the_same_as_of_again_builds_nothing(runs_as_time_moves):
    runs = runs_as_time_moves
    assert _dbt_models_built(runs["same_as_of"]) == set()
    for name, table in runs["backfill"].tables.items():
        pd.testing.assert_frame_equal(table, runs["same_as_of"].tables[name], obj=name)


def test_an_audience_rebuilt_as_time_moves_says_who_entered_and_left(runs_as_time_moves):
    runs = runs_as_time_moves
    members = {name: runs[name].tables["marts.audience_members"] for name in ("backfill", "two_days_on")}
    cart = runs["two_days_on"].metadata["audiences/audience__cart_abandoners"]
    counts = {name: int((table.audience == "cart_abandoners").sum()) for name, table in members.items()}
    assert cart["members"] == counts["two_days_on"]
    assert cart["entered"] - cart["exited"] == counts["two_days_on"] - counts["backfill"]


@pytest.fixture(scope="session")
def nothing_to_do(sample_runs: SampleRuns, tmp_path_factory) -> dict:
    """``identity-warehouse run`` on a copy of the sample's first build, which nothing changed since."""
    warehouse = sample_runs.copy_of_first_build(tmp_path_factory.mktemp("nothing-to-do"))
    env = {**os.environ, "LANDING_DIR": str(warehouse.landing), "DUCKDB_PATH": str(warehouse.database),
           "EXPORT_DIR": str(warehouse.exports)}
    env.pop("DAGSTER_HOME", None)
    started = time.monotonic()
    result = _run(env)
    return {"warehouse": warehouse, "output": result.stdout + result.stderr, "seconds": time.monotonic() - started}


def test_a_run_with_nothing_to_do_says_so_without_starting_dagster(nothing_to_do):
    output = nothing_to_do["output"]
    print(f"identity-warehouse run with nothing to do: {nothing_to_do['seconds']:.1f} s")
    assert "up to date: nothing new landed, no code changed, and no event crossed the edge of a window" in output
    assert "profiles: " in output  # the summary, read from the warehouse
    assert "build_warehouse" not in output and "dbt's full log" not in output, output  # no Dagster run, no dbt


@pytest.mark.parametrize("change", ["a landing file", "a privacy request", "another var", "an earlier as_of",
                                    "a later as_of that moves a window", "a run that did not finish well",
                                    "an export deleted", "hashing switched on for exports"])
def test_anything_that_could_change_the_warehouse_runs_the_job(nothing_to_do, change, tmp_path):
    from orchestration.location import build_state
    from orchestration.location.up_to_date import current_as_of

    warehouse = copy_built_warehouse(nothing_to_do["warehouse"], tmp_path)
    with warehouse.environment():
        assert current_as_of({}) is not None  # as the command found it
        with duckdb.connect(str(warehouse.database), read_only=True) as conn:
            newest = conn.execute("select max(event_at) from marts.profile_events").fetchone()[0]
        dbt_vars = {}
        if change == "a landing file":
            added = warehouse.landing / "events" / "new.jsonl"
            added.write_text('{"type": "track", "messageId": "n-1", "anonymousId": "a-new", "event": "Opened", '
                             '"timestamp": "2024-01-01T00:00:00Z"}\n')
        elif change == "a privacy request":
            added = warehouse.landing / "privacy" / "request.json"
            added.parent.mkdir(exist_ok=True)
            added.write_text('{"request_id": "r-1", "action": "delete", "identifier_type": "email", '
                             '"identifier_value": "someone@example.com"}\n')
        elif change == "another var":
            dbt_vars = {"identity_rules": {**settings.dbt_vars()["identity_rules"], "default_phone_country_code": "44"}}
        elif change == "an earlier as_of":
            dbt_vars = {"as_of": "2024-01-01"}
        elif change == "a later as_of that moves a window":  # from before the newest event to after it
            with duckdb.connect(str(warehouse.database)) as conn:
                conn.execute("update build_state.model_builds set as_of = ? where as_of is not null",
                             [newest - timedelta(hours=1)])
        elif change == "an export deleted":
            shutil.rmtree(warehouse.exports / "cart_abandoners")
        elif change == "hashing switched on for exports":  # the files hold plain e-mails: written again
            os.environ["HASH_PII_IN_EXPORTS"] = "true"
        else:
            with duckdb.connect(str(warehouse.database)) as conn:
                build_state.mark_last_run(conn, finished_ok=False)
        try:
            assert current_as_of(dbt_vars) is None
        finally:
            os.environ.pop("HASH_PII_IN_EXPORTS", None)
