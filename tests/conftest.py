"""Shared fixtures. The end-to-end warehouse is built once per session: every dbt or Dagster
invocation costs seconds of start-up."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def copy_dbt_project(destination: Path) -> Path:
    """A copy of the dbt project without its build output: target/, logs/ and the models compiled from
    the definitions (models/computed/, made again from the copy's YAML); macros/computed/ is source."""
    generated = settings.DBT_PROJECT_DIR / "models"

    def leave_out(folder: str, names: list[str]) -> set[str]:
        skipped = {name for name in names if name in ("target", "logs", ".computed.tmp")}
        if Path(folder) == generated and "computed" in names:
            skipped.add("computed")
        return skipped

    shutil.copytree(settings.DBT_PROJECT_DIR, destination, ignore=leave_out)
    return destination
