"""Resources: the warehouse file and the landing folder, resolved once."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration import settings


class Warehouse(dg.ConfigurableResource):
    """Where landing files are read from and the DuckDB file they are loaded into."""

    duckdb_path: str
    landing_dir: str

    @property
    def database(self) -> Path:
        return Path(self.duckdb_path)

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir)


def warehouse_from_environment() -> Warehouse:
    return Warehouse(duckdb_path=str(settings.duckdb_path()), landing_dir=str(settings.landing_dir()))
