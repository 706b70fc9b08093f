"""Short-lived DuckDB connections.

DuckDB allows one writer per file and dbt opens the file itself: never keep a connection open
across steps. Every use goes through ``connect()``, which closes the connection on exit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from orchestration.core import settings
from orchestration.core.locking import writer_lock

# How long a connection waits for a process that holds the file without the writer lock: a dbt
# killed with its run (it dies a moment after the run that held the lock), or another program.
FILE_LOCK_PATIENCE_SECONDS = 60.0


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    # Any open connection keeps other processes out of the file: wait for their turn (locking.py).
    with writer_lock(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _open(path, read_only)
        conn.execute("set enable_progress_bar = false")  # it would fill the run logs
        try:
            yield conn
        finally:
            conn.close()


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Opens the file, waiting (up to ``FILE_LOCK_PATIENCE_SECONDS``) while another process still
    holds DuckDB's own lock on it."""
    deadline = time.monotonic() + FILE_LOCK_PATIENCE_SECONDS
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=settings.duckdb_config())
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def fetch_value(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    row = conn.execute(sql, params or []).fetchone()
    return None if row is None else row[0]


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        fetch_value(
            conn,
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        )
    )


def data_version(conn: duckdb.DuckDBPyConnection) -> str:
    """Changes whenever a file lands, a privacy request is processed or a migration step is applied
    (orchestration/core/migrations.py: its steps leave rows for the next build to recompute): the
    inputs of every model, and of the marts built from them."""
    parts = []
    for schema, table, stamp in [("raw", "loaded_files", "loaded_at"), ("privacy", "requests", "processed_at"),
                                 ("meta", "schema_version", "applied_at")]:
        parts.append(conn.execute(f"select count(*), max({stamp}) from {schema}.{table}").fetchone()
                     if table_exists(conn, schema, table) else None)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


# The one quoting helper: values reach SQL as bound parameters wherever DuckDB takes them; these
# are for the places it does not (names of tables and columns, DDL, table functions' arguments).
def quote_identifier(name: str) -> str:
    """A table, schema or column name as a quoted SQL identifier."""
    if "\0" in name:
        raise ValueError("a SQL name cannot hold a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A string as a SQL string literal (standard SQL: quotes doubled, backslashes are plain)."""
    if "\0" in text:
        raise ValueError("a SQL string cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


def compact(database: Path) -> tuple[int, int]:
    """Rewrites the DuckDB file with only its live data; returns its size before and after.

    A delete releases the blocks of the rows it removed but does not overwrite them: an erased
    person's values stay readable in the file's free blocks until they are reused. A copy of the
    database holds none of them; it replaces the file atomically (a crash leaves the old one)."""
    with writer_lock(database):
        for stale in database.parent.glob(".compact-*"):  # a compaction that died part-way
            shutil.rmtree(stale, ignore_errors=True)
        with connect(database) as conn:
            conn.execute("checkpoint")  # nothing left in the write-ahead log of the old file
        folder = database.parent / f".compact-{os.getpid()}"
        folder.mkdir(mode=0o700)
        fresh = folder / database.name  # the same name: DuckDB names the database after it
        try:
            conn = duckdb.connect(str(fresh), config=settings.duckdb_config())
            try:
                conn.execute(f"attach {quote_literal(str(database))} as compact_source (read_only)")
                conn.execute(f"copy from database compact_source to {quote_identifier(fresh.stem)}")
                conn.execute("detach compact_source")
            finally:
                conn.close()
            os.chmod(fresh, database.stat().st_mode & 0o777)
            before = database.stat().st_size
            os.replace(fresh, database)
            return before, database.stat().st_size
        finally:
            shutil.rmtree(folder, ignore_errors=True)
