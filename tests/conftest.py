"""Shared fixtures. The end-to-end warehouse is built once per session: every dbt or Dagster
invocation costs seconds of start-up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from orchestration.core import settings

SEEDS = settings.SAMPLE_LANDING_DIR
WAREHOUSE_FILE_NAME = settings.DEFAULT_DUCKDB_PATH.name  # dbt names the database after the file stem

settings.quiet_telemetry()
os.environ.pop("DAGSTER_HOME", None)  # tests use ephemeral Dagster instances


@contextmanager
def environment(**values: os.PathLike | str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: str(value) for key, value in values.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value



def pytest_sessionstart(session):
    """Build the dbt manifest before any module imports the dbt assets (collection comes first)."""
    from orchestration.location.project import prepare_manifest

    prepare_manifest()
