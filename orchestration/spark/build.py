"""The same dbt project on Apache Spark: the ``spark`` target of ``profiles.yml``.

dbt-spark's ``session`` method runs PySpark inside the dbt process (it needs Java), locally or
against a cluster's master (``SPARK_MASTER``). A run, in one process and one Spark:

1. lands the new landing files in Spark's ``raw`` tables, each file read by a Spark task with the
   project's own ingestion (``orchestration/spark/landing.py``: the same classification, rejections,
   privacy screen, loaded-files record and idempotence as on DuckDB);
2. ``dbt build --target spark``: every model, data test and unit test, on Spark.

The privacy requests stay in ``DUCKDB_PATH`` (its tombstones and locks screen the landing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.core import settings
from orchestration.core.dbt_args import dbt_build_args

TARGET = "spark"
# Spark writes dbt's artifacts beside DuckDB's otherwise, and the Dagster code location reads those.
TARGET_PATH = "target/spark"
# What the marts and the computed traits and audiences are in (the schemas compared, exported).
OUTPUT_SCHEMAS = ["marts", "traits", "audiences"]


class SparkRunError(RuntimeError):
    """A dbt command on the Spark target failed."""


def spark_dir() -> Path:
    """``settings.spark_warehouse_dir()``, exported, absolute, for dbt's profile."""
    path = settings.spark_warehouse_dir()
    os.environ["SPARK_WAREHOUSE_DIR"] = str(path)
    return path


def java_available() -> bool:
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))


def pyspark_available() -> bool:
    try:
        import dbt.adapters.spark  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def missing_requirements() -> list[str]:
    """What running on Spark needs and this machine lacks (empty when it can)."""
    missing = []
    if not java_available():
        missing.append("Java (e.g. `apt-get install openjdk-17-jre-headless`)")
    if not pyspark_available():
        missing.append("dbt-spark and pyspark (`pip install -e '.[spark]'`)")
    return missing


def dbt_environment() -> dict[str, str]:
    settings.quiet_telemetry()
    spark_dir().mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Spark's driver listens on loopback only; its Python workers are this interpreter.
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env


@dataclass
class StepResult:
    name: str
    seconds: float
    lines: list[str] = field(default_factory=list)


def run_steps(steps: list[dict], dbt_vars: dict | None = None, echo: bool = False) -> dict[str, StepResult]:
    """dbt commands on the Spark target, in one process: Spark starts once (its JVM and the Hive
    metastore take half a minute) and the project is parsed once. Each step is ``{"name": ...,
    "args": [dbt arguments]}``; the computed trait and audience models are compiled from their
    YAML first, as for DuckDB. Raises ``SparkRunError`` when a step fails."""
    from orchestration.computed.compiler import compile_definitions

    compile_definitions(settings.DBT_PROJECT_DIR)
    plan = {"steps": steps, "vars": dbt_vars or {}}
    command = [sys.executable, "-m", "orchestration.spark.build", json.dumps(plan)]
    process = subprocess.Popen(command, cwd=settings.DBT_PROJECT_DIR, env=dbt_environment(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    results: dict[str, StepResult] = {}
    lines: list[str] = []
    for line in process.stdout:
        line = line.rstrip("\n")
        if line.startswith(STEP_MARK):
            done = json.loads(line[len(STEP_MARK):])
            results[done["name"]] = StepResult(done["name"], done["seconds"], lines)
            lines = []
            continue
        lines.append(line)
        if echo and not line.startswith(LANDED_MARK):
            print(line, flush=True)
    returncode = process.wait()
    if returncode != 0:
        failed = next((step["name"] for step in steps if step["name"] not in results), "start")
        tail = "\n".join(line for line in lines[-80:] if "WARN SparkSession" not in line)
        raise SparkRunError(f"{failed} on Spark failed (exit {returncode}):\n{tail}")
    return results


STEP_MARK = "@@identity-warehouse-step "
LANDED_MARK = "@@identity-warehouse-landed "


def _land_files(landing_dir: Path, staging: Path, dbt_vars: dict) -> None:
    """The landing step, in the worker's Spark (dbt's session): screened by the privacy requests
    that ``DUCKDB_PATH`` records."""
    from pyspark.sql import SparkSession

    from orchestration.landing.ingestion import IdentityFields
    from orchestration.landing.sources import registered_sources
    from orchestration.spark.landing import land

    _spark_session_in_process()
    rules = settings.identity_rules()
    screened, salt = privacy_screen_rows(settings.duckdb_path())
    file_format = _file_format(dbt_vars)
    summary, erased = land(SparkSession.builder.getOrCreate(), landing_dir, staging, spark_dir(),
                           IdentityFields.from_rules(rules), registered_sources(), rules, screened, salt, file_format)
    if erased:
        print(f"erased {sum(erased.values())} landed row(s) of erased identifiers: "
              + ", ".join(f"raw.{table} {rows}" for table, rows in sorted(erased.items())), flush=True)
    print(f"landed {len(summary.files_loaded)} new file(s), {summary.files_skipped} already landed; "
          f"accepted {sum(summary.accepted.values())}, rejected {sum(summary.rejected.values())} line(s)", flush=True)
    print(LANDED_MARK + json.dumps({
        "files_loaded": [result.relative_path for result in summary.files_loaded],
        "files_skipped": summary.files_skipped, "accepted": dict(summary.accepted),
        "rejected": dict(summary.rejected), "erased": erased}), flush=True)


def _erase_lines(dbt_vars: dict) -> None:
    """The erase step, in the worker's Spark: the lines privacy requests erased out of the raw tables."""
    from pyspark.sql import SparkSession

    from orchestration.spark.landing import PENDING_ERASURE_FILE, remove_pending_lines

    _spark_session_in_process()
    removed = remove_pending_lines(SparkSession.builder.getOrCreate(), spark_dir() / PENDING_ERASURE_FILE,
                                   _file_format(dbt_vars))
    print(f"erased {sum(removed.values())} landed row(s): "
          + (", ".join(f"raw.{table} {rows}" for table, rows in removed.items()) or "none left"), flush=True)


def _spark_session_in_process() -> None:
    from pyspark import SparkContext

    if SparkContext._active_spark_context is None:
        raise SparkRunError("Spark lands the files on the session method only (a local Spark or a standalone "
                            "master, SPARK_MASTER): on a Thrift server or Databricks, fill the raw tables with the "
                            "cluster's own tools and run dbt build (docs/spark.md)")


def _file_format(dbt_vars: dict) -> str:
    return dbt_vars.get("spark_file_format", settings.dbt_vars().get("spark_file_format", "parquet"))


def privacy_screen_rows(duckdb_path: Path) -> tuple[list[tuple[str, str, str]], str | None]:
    """The erased and locked identifiers (hashed) that ``duckdb_path`` records, and its salt (None
    when there are none)."""
    import duckdb

    from orchestration.privacy.requests import privacy_salt
    from orchestration.privacy.screen import SCREENED_SQL

    if not duckdb_path.exists():
        return [], None
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        [(tables,)] = conn.execute("select count(*) from information_schema.tables where table_schema = 'privacy' "
                                   "and table_name in ('tombstones', 'locks')").fetchall()
        rows = conn.execute(SCREENED_SQL).fetchall() if tables == 2 else []
    return rows, privacy_salt(duckdb_path) if rows else None


def _worker(plan: dict) -> int:
    """``python -m orchestration.spark.build PLAN``: runs the steps with dbt's Python API, one Spark."""
    from dbt.cli.main import dbtRunner

    common = ["--target", TARGET, "--profiles-dir", str(settings.DBT_PROFILES_DIR), "--project-dir",
              str(settings.DBT_PROJECT_DIR), "--target-path", TARGET_PATH]
    if plan["vars"]:
        common += ["--vars", json.dumps(plan["vars"], sort_keys=True)]
    parsed = dbtRunner().invoke(["parse", "--quiet", *common])
    if not parsed.success:
        print(f"dbt parse failed: {parsed.exception}", flush=True)
        return 1
    runner = dbtRunner(manifest=parsed.result)
    for step in plan["steps"]:
        started = time.monotonic()
        if "land_files" in step or "erase_lines" in step:
            # The schema first: that starts dbt's Spark, with the profile's settings, for the landing.
            result = runner.invoke(["run-operation", "create_landing_schema", *common])
            try:
                if result.success and "land_files" in step:
                    _land_files(Path(step["land_files"]["landing_dir"]), Path(step["land_files"]["staging_dir"]),
                                plan["vars"])
                elif result.success:
                    _erase_lines(plan["vars"])
            except SparkRunError as error:
                print(f"{step['name']} failed: {error}", flush=True)
                return 1
        else:
            result = runner.invoke([*step["args"], *common])
        if not result.success:
            print(f"{step['name']} failed: {result.exception or 'see the lines above'}", flush=True)
            return 1
        print(STEP_MARK + json.dumps({"name": step["name"], "seconds": time.monotonic() - started}), flush=True)
    return 0


def land_files_step(landing_dir: Path | None = None) -> dict:
    """The step that lands the new files of ``landing_dir`` (default ``LANDING_DIR``) in Spark. Its
    rows are staged in ``SPARK_LANDING_DIR`` (default ``<SPARK_WAREHOUSE_DIR>/landing``), which
    every executor must be able to write and the driver to read. Paths are made absolute here: the
    worker runs in the dbt project."""
    staging = Path(os.environ.get("SPARK_LANDING_DIR") or spark_dir() / "landing")
    return {"name": "land", "land_files": {"landing_dir": str(Path(landing_dir or settings.landing_dir()).resolve()),
                                           "staging_dir": str(staging.resolve())}}


def landed(result: StepResult) -> dict:
    """What a landing step did: ``files_loaded`` (paths in the landing folder), ``files_skipped``,
    lines ``accepted`` per raw table and ``rejected`` per reason, rows ``erased`` per raw table."""
    line = next(line for line in result.lines if line.startswith(LANDED_MARK))
    return json.loads(line[len(LANDED_MARK):])


def erase_step() -> dict:
    """The step that removes from Spark's raw tables the lines privacy requests erased
    (``landing.PENDING_ERASURE_FILE``, written by the privacy requests on the control database)."""
    return {"name": "erase", "erase_lines": {}}


def build_step(full_refresh: bool = False, unit_tests: bool = True) -> dict:
    """``dbt build``: every model, data test and unit test (the vars are the run's)."""
    return {"name": "build", "args": dbt_build_args(full_refresh, unit_tests=unit_tests)}


def export_step(out_dir: Path, schemas: list[str] = OUTPUT_SCHEMAS) -> dict:
    """Every table of ``schemas`` as Parquet folders ``out_dir/<schema>/<table>/``."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    return {"name": "export", "args": ["run-operation", "export_schemas", "--args",
                                       json.dumps({"schemas": schemas, "out_dir": str(out_dir)})]}


def exported_tables(result: StepResult, out_dir: Path) -> dict[str, Path]:
    """``{"schema.table": Parquet folder}`` of an export step."""
    names = [line.split("exported ", 1)[1].strip() for line in result.lines if "exported " in line]
    return {name: out_dir / name.split(".")[0] / name.split(".")[1] for name in names}


if __name__ == "__main__":
    sys.exit(_worker(json.loads(sys.argv[1])))
