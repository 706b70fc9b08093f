"""One writer at a time on a DuckDB file, across processes.

DuckDB lets one process open a file for writing; a second one fails at once with a lock error.
Runs started from the Dagster UI, schedule or sensor are queued by Dagster (dagster_home/dagster.yaml),
but ``identity-warehouse run`` executes the job in its own process, outside that queue. Every
opening of the file (``warehouse.connect``), every dbt command and the command-line run take an
exclusive ``flock`` on ``<database>.lock`` first, so a second run waits for the first instead of failing.
The lock is re-entrant within a process (the command-line run holds it while its steps take it again)
and the kernel releases it when its process dies, so a killed run never leaves it stuck. Its file
descriptor is closed in every child (``O_CLOEXEC``): dbt, started while a run holds the lock, never
keeps it held after the run dies.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_held: dict[str, int] = {}  # lock path → depth in this process
_guard = threading.Lock()


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextmanager
def writer_lock(database: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[float]:
    """Holds the database's lock; yields the seconds spent waiting for it."""
    path = lock_path(database)
    key = str(path)
    with _guard:
        nested = bool(_held.get(key))
        if nested:
            _held[key] += 1
    if nested:
        try:
            yield 0.0
        finally:
            with _guard:
                _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    started = time.monotonic()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            (on_wait or _say)(f"waiting for another run to finish with {database} (lock {path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        with _guard:
            _held[key] = _held.get(key, 0) + 1
        try:
            yield time.monotonic() - started
        finally:
            with _guard:
                _held.pop(key, None)
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created), held while the block runs; not re-entrant. For
    files of the checkout that runs on different warehouses share (the generated models, the manifest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def writer_lock_if_free(database: Path) -> Iterator[bool]:
    """The database's writer lock if no one holds it (True, held while the block runs), else False
    at once: for a short read that must not wait for, or make wait, a run (the landing sensor)."""
    path = lock_path(database)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
