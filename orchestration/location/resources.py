"""Resources: the warehouse file and the landing folder."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration.core import settings
from orchestration.location import recovery


def start_run(context: dg.InitResourceContext) -> None:
    """The run's process is known once its resources are set up (``identity-warehouse run``, or the
    run worker the UI, a schedule or a sensor starts): record it, and release runs killed before
    (orchestration/location/recovery.py) before any step waits for a pool slot."""
    if context.instance is not None and context.run_id is not None:
        recovery.start_run(context.instance, context.run_id, context.log.info if context.log else None)


class Warehouse(dg.ConfigurableResource):
    """Where landing files are read from (``LANDING_DIR``) and the DuckDB file they are loaded into
    (``DUCKDB_PATH``). Both are read from the environment when used, the same environment dbt
    inherits, so Python and dbt always work on the same file."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        start_run(context)

    @property
    def database(self) -> Path:
        return settings.duckdb_path()

    @property
    def landing(self) -> Path:
        return settings.landing_dir()
