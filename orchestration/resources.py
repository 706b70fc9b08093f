"""Resources: the warehouse file and the landing folder."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration import settings


class Warehouse(dg.ConfigurableResource):
    """Where landing files are read from (``LANDING_DIR``) and the DuckDB file they are loaded into
    (``DUCKDB_PATH``). Both are read from the environment when used, the same environment dbt
    inherits, so Python and dbt always work on the same file."""

    @property
    def database(self) -> Path:
        return settings.duckdb_path()

    @property
    def landing(self) -> Path:
        return settings.landing_dir()
