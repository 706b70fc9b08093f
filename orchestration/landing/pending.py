"""Which landing files the warehouse has not loaded yet: the landing folder against the warehouse's
own record, ``raw.loaded_files`` (what the sensor starts a run for).

A file is loaded when a record of its path has its size and modification time (as ingestion
stamps it) or, when those differ (a copy, a touch), its content's SHA-256, as ingestion compares.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from orchestration.core import settings
from orchestration.core.locking import writer_lock_if_free
from orchestration.core.warehouse import table_exists
from orchestration.landing.ingestion import discover_landing_files, file_sha256
from orchestration.landing.sources import LandingSource

Loaded = dict[str, list[tuple[int, datetime | None, str]]]  # path → (size, modified_at, sha256) of its loads


def read_loaded_files(database: Path) -> Loaded | str:
    """``raw.loaded_files`` by path, read on a short read-only connection; or why it cannot be read
    now (a run writes the warehouse). A warehouse not built yet has loaded nothing."""
    if not database.exists():
        return {}
    with writer_lock_if_free(database) as free:
        if not free:
            return "the warehouse is being written by a run; checking again at the next tick"
        try:
            with duckdb.connect(str(database), read_only=True, config=settings.duckdb_config()) as conn:
                return loaded_files(conn)
        except duckdb.IOException as error:  # held by a process outside the lock protocol
            if "lock" not in str(error).lower():
                raise
            return "the warehouse file is open for writing elsewhere; checking again at the next tick"


def loaded_files(conn: duckdb.DuckDBPyConnection) -> Loaded:
    """``raw.loaded_files`` by path, on an open connection."""
    if not table_exists(conn, "raw", "loaded_files"):
        return {}
    loaded: Loaded = {}
    for path, size, modified, sha in conn.execute("select file_path, size_bytes, modified_at, content_sha256 "
                                                  "from raw.loaded_files").fetchall():
        loaded.setdefault(path, []).append((size, modified, sha))
    return loaded


def pending_landing_files(landing_dir: Path, sources: list[LandingSource], loaded: Loaded) -> list[tuple[str, str]]:
    """(relative path, stamp) of every landing file not in ``loaded``; the stamp (size, mtime)
    changes when the file does."""
    pending = []
    for landing_file in discover_landing_files(landing_dir, sources):
        try:
            stat = landing_file.path.lstat()  # as ingestion stamps it: the link itself
        except OSError:
            continue  # gone since discovery
        modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc).replace(tzinfo=None)
        records = loaded.get(landing_file.relative_path, [])
        if any(size == stat.st_size and at == modified for size, at, _ in records):
            continue
        if records:
            try:
                if file_sha256(landing_file.path) in {sha for _, _, sha in records}:
                    continue
            except OSError:
                pass  # unreadable: ingestion decides and records why
        pending.append((landing_file.relative_path, f"{stat.st_size}:{stat.st_mtime_ns}"))
    return pending


def pending_key(pending: list[tuple[str, str]]) -> str:
    """One key per set of pending files (a run key: the same files never start two runs)."""
    digest = hashlib.sha256()
    for path, stamp in sorted(pending):
        digest.update(f"{path}\0{stamp}\n".encode())
    return digest.hexdigest()
