"""What is patched of dagster and dagster-dbt sits in one module (orchestration/location/patches.py),
and a version bump that changes a patched upstream function fails here, naming the entry to revisit."""
import hashlib
import importlib.metadata
import inspect
import re
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
import sqlglot
import sqlglot.lineage
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster_dbt.core import dbt_cli_event, dbt_cli_invocation, dbt_event_iterator

from orchestration.location import dbt_event_stream, patches, recovery
from orchestration.location.project import dbt_resource

PACKAGE = Path(__file__).resolve().parents[2] / "orchestration"
PINNED = {"dagster": "1.13.27", "dagster-dbt": "0.29.27"}
# SHA-256 (first 16 hex digits) of each upstream function's source at the pinned versions, and the
# entry of patches.py's docstring that depends on it.
UPSTREAM = {
    "dagster_dbt.core.dbt_cli_invocation.DbtCliInvocation.run": ("5339aed89294e237", "1 (dbt dies with its run)"),
    "dagster_dbt.core.resource.DbtCliResource._cli_version": ("b06b86a642ba8bcd", "2 (no dbt --version)"),
    "dagster_dbt.core.resource.DbtCliResource._initialize_dbt_core_adapter": ("f033303d9d777bff",
                                                                              "3 (no in-process adapter)"),
    "dagster_dbt.core.resource.DbtCliResource.cli": ("a9ca99daf92597e3", "2 and 3 (where cli() calls them)"),
    "dagster._core.utils.imap": ("b3339eed96c7e619", "4 (imap spins)"),
    "InstanceConcurrencyContext.interval_to_next_pending_claim_check": ("d9b44ab68eb41a99", "5 (slot wait spins)"),
    "InstanceConcurrencyContext.claim": ("8375daa833c671e5", "6 (slots of killed runs)"),
    "SqliteEventLogStorage._connect": ("b8435f2665689760", "7 (an engine per event)"),
    "dagster_dbt.core.dbt_cli_event._build_column_lineage_metadata": ("83e50d23578a3dfe", "8 (lineage column by column)"),
}


def test_the_pins_are_the_versions_the_patches_were_written_for():
    assert {name: importlib.metadata.version(name) for name in PINNED} == PINNED, (
        "dagster or dagster-dbt changed: revisit every entry of orchestration/location/patches.py, then the pins")


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_a_patched_upstream_function_is_as_it_was(name):
    expected, entry = UPSTREAM[name]
    found = hashlib.sha256(inspect.getsource(patches.ORIGINALS[name]).encode()).hexdigest()[:16]
    assert found == expected, f"{name} changed upstream: revisit patch {entry} in orchestration/location/patches.py"


def test_the_upstream_defects_are_still_there():
    """When upstream fixes them, the patch goes."""
    assert "min([0," in inspect.getsource(patches.ORIGINALS["InstanceConcurrencyContext.interval_to_next_pending_claim_check"])
    imap_source = inspect.getsource(patches.ORIGINALS["dagster._core.utils.imap"])
    assert "if len(work_queue) > 0:" in imap_source  # an empty queue is polled again at once
    assert "subprocess.Popen(" in inspect.getsource(patches.ORIGINALS[
        "dagster_dbt.core.dbt_cli_invocation.DbtCliInvocation.run"])
    assert "--version" in inspect.getsource(patches.ORIGINALS["dagster_dbt.core.resource.DbtCliResource._cli_version"])
    assert "create_engine(" in inspect.getsource(patches.ORIGINALS["SqliteEventLogStorage._connect"])
    assert "column=column_name," in inspect.getsource(patches.ORIGINALS[
        "dagster_dbt.core.dbt_cli_event._build_column_lineage_metadata"])


def test_installed_patches_are_in_place_and_idempotent():
    for _ in range(2):
        patches.install()
        recovery.install()
        dbt_event_stream.install()
    assert dbt_event_iterator.imap is dbt_event_stream.imap_waiting
    assert dbt_cli_event.lineage is patches.lineage_of_every_column
    assert SqliteEventLogStorage._connect is patches._connect_keeping_engines
    assert isinstance(dbt_cli_invocation.subprocess, patches._SubprocessDyingWithParent)
    assert InstanceConcurrencyContext.claim is recovery._claim_releasing_dead_holders
    assert recovery._claim is patches.ORIGINALS["InstanceConcurrencyContext.claim"]  # wraps the original, once
    assert (InstanceConcurrencyContext.interval_to_next_pending_claim_check
            is recovery._interval_to_next_pending_claim_check)
    resource = dbt_resource()
    assert isinstance(resource, patches.DbtCliResourceWithoutRepeatedCosts)
    assert str(resource._cli_version) == importlib.metadata.version("dbt-core")


UPSTREAM_ASSIGNMENT = re.compile(r"^\s*(?:dbt_cli_event|dbt_cli_invocation|dbt_event_iterator|InstanceConcurrencyContext|SqliteEventLogStorage)\.\w+\s*=",
                                 re.MULTILINE)
PRIVATE_OVERRIDE = re.compile(r"def (?:_cli_version|_initialize_dbt_core_adapter)\b")


def test_no_other_module_patches_dagster():
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if path.name != "patches.py"
                 and (UPSTREAM_ASSIGNMENT.search(path.read_text()) or PRIVATE_OVERRIDE.search(path.read_text()))]
    assert offenders == []


@dg.op
def _three_events(context):
    for n in range(3):
        context.log_event(dg.AssetMaterialization(asset_key=f"event_{n}"))


@dg.job
def _small_job():
    _three_events()


def test_the_sqlite_event_log_keeps_one_engine_per_file(tmp_path, monkeypatch):
    """Dagster's own storage creates an engine per statement (about 10 for one event); patched, it
    creates one per database file and keeps it, commits with synchronous=NORMAL, and writes the files
    a Dagster process without the patch reads."""
    home = tmp_path / "home"
    home.mkdir()
    instance = dg.DagsterInstance.from_config(str(home))  # SQLite files, as `make run`'s instance
    storage = instance.event_log_storage
    assert isinstance(storage, SqliteEventLogStorage)

    created = []
    real_create_engine = sqlalchemy.create_engine
    monkeypatch.setattr(sqlalchemy, "create_engine", lambda *a, **k: created.append(a[0]) or real_create_engine(*a, **k))
    runs = [_small_job.execute_in_process(instance=instance) for _ in range(2)]
    assert all(run.success for run in runs)
    # one engine for each run's file across all its events (the index's was created with the instance)
    assert sorted(Path(url.split("///")[-1]).stem for url in created) == sorted(run.run_id for run in runs)
    assert set(storage._kept_engines) == {"index", *(run.run_id for run in runs)}
    with storage.index_connection() as conn:
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"  # as Dagster sets it up

    monkeypatch.setattr(SqliteEventLogStorage, "_connect", patches.ORIGINALS["SqliteEventLogStorage._connect"])
    upstream = dg.DagsterInstance.from_config(str(home)).event_log_storage
    for run in runs:
        logged = upstream.get_logs_for_run(run.run_id)
        assert sum(1 for e in logged if e.dagster_event and e.dagster_event.is_step_materialization) == 3


def test_the_event_log_keeps_a_bounded_number_of_engines(tmp_path):
    storage = SqliteEventLogStorage(str(tmp_path))
    for n in range(patches.KEPT_ENGINES + 5):
        with storage.run_connection(f"run-{n}") as conn:
            conn.exec_driver_sql("select 1")
    assert len(storage._kept_engines) == patches.KEPT_ENGINES
    assert "run-0" not in storage._kept_engines and f"run-{patches.KEPT_ENGINES + 4}" in storage._kept_engines


def _leaves(node) -> set[tuple[str, str]]:
    return {(n.name, n.expression.find(sqlglot.exp.Table).name) for n in node.walk()
            if not n.downstream and n.expression.find(sqlglot.exp.Table)}


@pytest.mark.parametrize("sql", [
    "with recent as (select user_id, max(event_at) as last_at from events group by 1) "
    "select u.user_id, u.email, r.last_at from users as u left join recent as r on r.user_id = u.user_id",
    "select user_id, email from users union all select user_id, null as email from events",
    "select user_id, upper(email) from users",  # an unnamed projection: sqlglot refuses every column at once
])
def test_lineage_of_every_column_answers_as_sqlglot_per_column(sql):
    schema = sqlglot.MappingSchema({"users": {"user_id": "text", "email": "text"},
                                    "events": {"user_id": "text", "event_at": "timestamp"}}, dialect="duckdb")
    named = sqlglot.parse_one(sql, dialect="duckdb").named_selects
    for column in named:
        patched = patches.lineage_of_every_column(column, sql, schema, dialect="duckdb")
        assert _leaves(patched) == _leaves(sqlglot.lineage.lineage(column, sql, schema, dialect="duckdb")), column
        assert _leaves(patched)
