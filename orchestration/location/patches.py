"""Every patch of dagster's and dagster-dbt's private parts, in one place.

dagster 1.13.27 and dagster-dbt 0.29.27 offer no public API for what these do (checked in their
source; see each entry). The pins in pyproject.toml are exact because of them: after a version
bump, ``tests/unit/test_patches.py`` fails for each upstream function whose signature or code
changed, naming the entry here to revisit (drop the patch if upstream fixed it, or adapt it).

1. ``dagster_dbt.core.dbt_cli_invocation.subprocess`` (the module ``DbtCliInvocation.run`` calls
   ``subprocess.Popen`` through): dbt is started so that the kernel kills it with the thread that
   started it. dbt holds the DuckDB file while it runs; killed with its run, it must not outlive it
   and make the next run fail on DuckDB's lock. No hook for the Popen exists.
2. ``DbtCliResource._cli_version`` (private cached property): runs ``dbt --version`` (5 s) before
   every command; the project's dbt is the dbt-core installed beside this Python, read from its
   package metadata instead. No public setting skips it.
3. ``DbtCliResource._initialize_dbt_core_adapter`` (private): opens a dbt adapter in this process
   (3 s) before every command, needed only by ``fetch_column_metadata()``; a build that does not
   fetch column metadata goes without (``without_adapter_in_process``). No public switch.
4. ``dagster_dbt.core.dbt_event_iterator.imap`` (``dagster._core.utils.imap``): polls its work queue
   without waiting while it is empty, a core spinning for the whole build on DuckDB; replaced by
   ``dbt_event_stream.imap_waiting`` (same results, same order, blocking).
5. ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` (dagster private): returns
   ``min([0, ...])``, never above 0, so a step waiting for a pool slot re-checks in a busy loop;
   replaced by ``recovery._interval_to_next_pending_claim_check`` (the real interval).
6. ``InstanceConcurrencyContext.claim`` (dagster private): wrapped by
   ``recovery._claim_releasing_dead_holders`` so that a step waiting for a slot frees the slots of
   runs killed meanwhile (Dagster cannot tell such a run is dead: see recovery.py).
7. ``SqliteEventLogStorage._connect`` (dagster private): creates a SQLAlchemy engine for every
   connection, so each statement of the ~520 events of a build of the sample pays a new engine's
   first connection and compiles afresh (the statement cache dies with the engine), and every commit
   waits for the disk: 9-12 ms an event. ``_connect_keeping_engines`` keeps one engine per database
   file: 6 ms. Same files and tables: a Dagster process without the patch (the webserver) reads them.
8. ``dagster_dbt.core.dbt_cli_event.lineage`` (``sqlglot.lineage.lineage`` as dagster-dbt's column
   lineage calls it, once per column of every model): each call parses and qualifies the model's
   SQL again, and copies the whole query at every step of the walk for a label (``trim_selects``)
   that dagster-dbt never reads; 19 of the 24 s its column metadata took on the sample when the
   project changed. ``lineage_of_every_column`` asks sqlglot once per model for every column
   (its own API, ``column=None``), without those copies, and answers each column's call from that:
   the same lineage, checked against upstream's on every model of the sample.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import signal
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property

import sqlalchemy as db
import sqlglot.lineage
import sqlglot.optimizer.normalize_identifiers
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from dagster_dbt import DbtCliResource
from dagster_dbt.core import dbt_cli_event, dbt_cli_invocation, dbt_event_iterator
from packaging import version
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from orchestration.core import settings

# The upstream functions the patches replace or depend on, as they were before any patch: the test
# checks their signature and code against the pinned versions.
ORIGINALS = {
    "dagster_dbt.core.dbt_cli_invocation.DbtCliInvocation.run": dbt_cli_invocation.DbtCliInvocation.run,
    "dagster_dbt.core.resource.DbtCliResource._cli_version": DbtCliResource.__dict__["_cli_version"].func,
    "dagster_dbt.core.resource.DbtCliResource._initialize_dbt_core_adapter":
        DbtCliResource._initialize_dbt_core_adapter,
    "dagster_dbt.core.resource.DbtCliResource.cli": DbtCliResource.cli,
    "dagster._core.utils.imap": dbt_event_iterator.imap,
    "InstanceConcurrencyContext.interval_to_next_pending_claim_check":
        InstanceConcurrencyContext.interval_to_next_pending_claim_check,
    "InstanceConcurrencyContext.claim": InstanceConcurrencyContext.claim,
    "SqliteEventLogStorage._connect": SqliteEventLogStorage._connect,
    "dagster_dbt.core.dbt_cli_event._build_column_lineage_metadata": dbt_cli_event._build_column_lineage_metadata,
}

# --- 1. dbt dies with the thread that started it ---------------------------------------------

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # looked up before any fork: the child only calls it


def dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when the thread that started it ends
    (Linux; None elsewhere). The thread matters: dbt is started from the step's thread, which waits
    for it to end."""
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above: no signal will come
            os._exit(1)
    return preexec


class _SubprocessDyingWithParent:
    """``subprocess`` as dagster-dbt's DbtCliInvocation sees it: its ``Popen`` makes children that
    die with their parent."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs) -> subprocess.Popen:  # noqa: N802 (subprocess's name)
        if kwargs.get("preexec_fn") is None:
            kwargs["preexec_fn"] = dies_with_parent()
        return subprocess.Popen(*args, **kwargs)


# --- 2 and 3. dagster-dbt's resource without its repeated costs -----------------------------

_adapter_in_process: ContextVar[bool] = ContextVar("adapter_in_process", default=True)


@contextmanager
def without_adapter_in_process() -> Iterator[None]:
    token = _adapter_in_process.set(False)
    try:
        yield
    finally:
        _adapter_in_process.reset(token)


class DbtCliResourceWithoutRepeatedCosts(DbtCliResource):
    """dagster-dbt's resource without two costs of every command: `dbt --version` (the project's dbt
    is the dbt-core installed beside this Python) and, when not needed, the in-process adapter."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if self.dbt_executable != settings.DBT_EXECUTABLE:
            return super()._cli_version
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return super()._initialize_dbt_core_adapter(args) if _adapter_in_process.get() else None


# --- 7. the instance's SQLite event log, one engine per file ----------------------------------

# Database files (the index, and one per run) an instance keeps an engine for: the runs it writes
# and those the UI reads. An engine holds no connection (NullPool, as upstream), only its caches.
KEPT_ENGINES = 16


def _commit_without_waiting_for_the_disk(dbapi_connection, _record) -> None:
    # In the WAL journal Dagster sets up, a commit still survives the process being killed; only a
    # power cut can take the last ones back, and the run's recovery treats that as any run that died.
    dbapi_connection.execute("pragma synchronous=NORMAL")


def _engine(storage: SqliteEventLogStorage, shard: str) -> Engine:
    engines: OrderedDict[str, Engine] = storage.__dict__.setdefault("_kept_engines", OrderedDict())
    engine = engines.pop(shard, None)
    if engine is None:
        engine = db.create_engine(storage.conn_string_for_shard(shard), poolclass=NullPool,
                                  connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        db.event.listen(engine, "connect", _commit_without_waiting_for_the_disk)
    engines[shard] = engine  # the most recently used last
    while len(engines) > KEPT_ENGINES:
        engines.popitem(last=False)[1].dispose()
    return engine


@contextmanager
def _connect_keeping_engines(self: SqliteEventLogStorage, shard: str) -> Iterator[Connection]:
    # As upstream (sqlite_event_log.py, _connect), with the engine kept instead of created each time.
    with self._db_lock:
        engine = _engine(self, shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        with engine.connect() as conn:
            with conn.begin():
                yield conn


# --- 8. the lineage of a model's columns at once ------------------------------------------------

_lineage_by_thread = threading.local()  # dagster-dbt works on several models at once, one a thread


def lineage_of_every_column(column, sql, schema, dialect=None, **kwargs):
    """``sqlglot.lineage.lineage`` for one column, computed with the model's every other column the
    first time a model's SQL is asked about (by the same thread, with the same schema object).
    The nodes' ``source`` is the whole select, not one trimmed to the column: dagster-dbt reads only
    the leaves' names and tables, and the walk does not depend on it."""
    upstream = sqlglot.lineage.lineage  # what dagster-dbt imported (sqlglot itself is never patched)
    last = getattr(_lineage_by_thread, "last", None)
    if last is None or last[0] is not schema or last[1] != (sql, dialect, kwargs):
        try:
            nodes = upstream(None, sql, schema, dialect=dialect, **{**kwargs, "trim_selects": False})
        except Exception:  # e.g. an unnamed projection, or a sqlglot without column=None: as upstream
            nodes = {}
        last = _lineage_by_thread.last = (schema, (sql, dialect, kwargs), nodes)
    name = sqlglot.optimizer.normalize_identifiers.normalize_identifiers(column, dialect=dialect).name
    node = last[2].get(name)
    return node if node is not None else upstream(column, sql, schema, dialect=dialect, **kwargs)


# --- installing 1, 4, 5, 6, 7, 8 ----------------------------------------------------------------


def install() -> None:
    """Applies the module-level patches (idempotent); 2 and 3 are the resource class above."""
    from orchestration.location import dbt_event_stream, recovery

    dbt_cli_invocation.subprocess = _SubprocessDyingWithParent()
    dbt_event_iterator.imap = dbt_event_stream.imap_waiting
    dbt_cli_event.lineage = lineage_of_every_column
    SqliteEventLogStorage._connect = _connect_keeping_engines
    dbt_event_stream.quiet_dagster_dbt_log()
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = recovery._interval_to_next_pending_claim_check
    InstanceConcurrencyContext.claim = recovery._claim_releasing_dead_holders
