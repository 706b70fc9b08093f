"""Where things live. Every path is resolved once, here, to an absolute path.

dagster-dbt runs dbt with the dbt project as its working directory, so a relative DuckDB path would
name a second database; resolving it here and handing the absolute path on (through the
environment that dbt inherits) keeps Python and dbt on one file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# A copy of the dbt project can be run instead (the tests run their own trait and audience definitions).
DBT_PROJECT_DIR = Path(os.environ.get("DBT_PROJECT_DIR") or PROJECT_ROOT / "dbt_project").resolve()
DBT_PROFILES_DIR = PROJECT_ROOT
SAMPLE_LANDING_DIR = PROJECT_ROOT / "seeds"
DEFAULT_DUCKDB_PATH = PROJECT_ROOT / "data" / "identity_warehouse.duckdb"
DEFAULT_EXPORT_DIR = PROJECT_ROOT / "data" / "exports"
DEFINITIONS_DIR = DBT_PROJECT_DIR / "definitions"
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))


def _resolve(value: str | os.PathLike | None, default: Path) -> Path:
    return Path(value).expanduser().resolve() if value else default


def duckdb_config() -> dict[str, str]:
    """How much memory DuckDB may use and where it spills beyond that: ``DUCKDB_MEMORY_LIMIT``
    (default 80% of RAM) and ``DUCKDB_TEMP_DIR`` (default beside the database file). dbt's profile
    reads the same variables with the same defaults."""
    return {
        "memory_limit": os.environ.get("DUCKDB_MEMORY_LIMIT") or "80%",
        "temp_directory": os.environ.get("DUCKDB_TEMP_DIR") or f"{duckdb_path()}.tmp",
    }


def landing_dir() -> Path:
    """Folder of landing files: ``LANDING_DIR`` or the sample data in ``seeds/``."""
    return _resolve(os.environ.get("LANDING_DIR"), SAMPLE_LANDING_DIR)


def duckdb_path() -> Path:
    """The DuckDB file, absolute; also exported as ``DUCKDB_PATH`` for dbt's profile. On the Spark
    target it is the control database, by default beside Spark's warehouse (not the DuckDB
    warehouse's file, which it must not be)."""
    default = spark_warehouse_dir() / DEFAULT_DUCKDB_PATH.name if warehouse_target() == "spark" else DEFAULT_DUCKDB_PATH
    path = _resolve(os.environ.get("DUCKDB_PATH"), default)
    os.environ["DUCKDB_PATH"] = str(path)
    return path


WAREHOUSE_TARGETS = ("duckdb", "spark")
DEFAULT_SPARK_DIR = PROJECT_ROOT / "data" / "spark"


def spark_warehouse_dir() -> Path:
    """Where the local Spark's warehouse (Parquet files) and its Derby metastore live:
    ``SPARK_WAREHOUSE_DIR`` or ``data/spark``."""
    return _resolve(os.environ.get("SPARK_WAREHOUSE_DIR"), DEFAULT_SPARK_DIR)


def warehouse_target() -> str:
    """The engine the Dagster job builds on: ``WAREHOUSE_TARGET``, ``duckdb`` (default) or ``spark``
    (the dbt profile's ``spark`` target; ``DUCKDB_PATH`` is then the control database: privacy
    requests, the export log, and views of Spark's tables: orchestration/spark/tables.py)."""
    target = (os.environ.get("WAREHOUSE_TARGET") or "duckdb").strip().lower()
    if target not in WAREHOUSE_TARGETS:
        raise ValueError(f"WAREHOUSE_TARGET: expected one of {', '.join(WAREHOUSE_TARGETS)}, got {target!r}")
    return target


def identity_rules() -> dict:
    """The identity rules of the dbt project (``vars: identity_rules`` in dbt_project.yml)."""
    return dbt_vars()["identity_rules"]


def dbt_vars() -> dict:
    """The ``vars`` of the dbt project (dbt_project.yml)."""
    import yaml

    return yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def _project_var(name: str, default=None):
    import yaml

    return yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"].get(name, default)


def hash_pii_in_exports() -> bool:
    """E-mails and phones in audience exports as SHA-256 of the normalised value:
    ``HASH_PII_IN_EXPORTS`` (true/false), else ``vars: hash_pii_in_exports`` in dbt_project.yml."""
    value = os.environ.get("HASH_PII_IN_EXPORTS", "").strip() or _project_var("hash_pii_in_exports", False)
    return _flag(value, "HASH_PII_IN_EXPORTS / hash_pii_in_exports")


def hash_pii_in_marts() -> bool:
    """Whether the profile marts hold hashed e-mails and phones (``vars: hash_pii_in_marts``)."""
    return _flag(_project_var("hash_pii_in_marts", False), "hash_pii_in_marts")


def export_dir() -> Path:
    """Where audience exports are written: ``EXPORT_DIR`` or ``data/exports``."""
    return _resolve(os.environ.get("EXPORT_DIR"), DEFAULT_EXPORT_DIR)


def quiet_telemetry() -> None:
    """There is no network to send usage statistics to; do not try."""
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")


def lookup_graph_dir() -> Path:
    """Where ``lookup`` draws a person's identity graph: a private folder beside the warehouse
    (personal data; a delete removes the person's pictures)."""
    return duckdb_path().parent / "private" / "lookups"


def compact_after_delete() -> bool:
    """Whether a run that erased people compacts the DuckDB file (``COMPACT_AFTER_DELETE``,
    default true): until then their values stay in the file's free blocks."""
    return _flag(os.environ.get("COMPACT_AFTER_DELETE", "").strip() or True, "COMPACT_AFTER_DELETE")
