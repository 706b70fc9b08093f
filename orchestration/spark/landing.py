"""Landing files → Spark's ``raw`` tables, read by Spark's executors (the ``spark`` target).

The driver lists the landing folder (names and links: it opens no file) and hands each file to a
Spark task of its own. The task, on whichever executor runs it, hashes the file and, when that
content is not landed yet, lands it with the project's own ingestion (``landing/ingestion.py``) into
a DuckDB in the task's memory: the same classification, rejection reasons, privacy screen, load id
and loaded-files record as on the DuckDB target, by the same code. It writes the file's rows as
Parquet to the staging folder, and the driver appends them to Spark's raw tables, ``raw.loaded_files``
last. No process reads every line: each executor reads its files.

Files land in parallel but keep the order of loading them one by one: each gets its ``loaded_at`` in
discovery order (de-duplication prefers the earlier load of a message read twice).

Idempotence: a file whose (path, content hash) is in ``raw.loaded_files`` is skipped. A run that
dies after appending some raw tables, before ``raw.loaded_files``, leaves rows of files that are not
recorded; the pending list (``landing-pending.json`` beside the warehouse) names their load ids, and
the next landing removes those rows before anything else, so that the files land again, once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

from orchestration.core.warehouse import quote_literal
from orchestration.landing.ingestion import (
    MAX_CSV_COLUMNS_VARIABLE,
    FileResult,
    IdentityFields,
    IngestionSummary,
    LandingFile,
    WholeFileRejection,
    _inside,
    _load_file,
    _recorded_unread,
    _unread_detail,
    create_raw_tables,
    discover_landing_files,
    file_sha256,
    max_csv_columns,
)
from orchestration.landing.sources import LandingSource

RAW_SCHEMA = "raw"
LOADED_FILES = "loaded_files"


@dataclass(frozen=True)
class FileTask:
    """One landing file for one Spark task."""

    number: int  # its place in discovery order: its Parquet files' name
    landing_file: LandingFile
    loaded_at: datetime
    rejection: WholeFileRejection | None = None  # decided without reading it (a link out of the folder)


@dataclass(frozen=True)
class LandingPlan:
    """What every task needs besides its file (shipped to the executors with the task)."""

    staging_dir: Path
    identity: IdentityFields
    sources: tuple[LandingSource, ...]
    rules: dict
    screened: tuple[tuple[str, str, str], ...]  # privacy.tombstones and privacy.locks (hashes), and why
    salt: str | None
    already: frozenset[tuple[str, str]]  # (path, content hash) of every file landed before
    max_csv_columns: int


def raw_table_columns(conn) -> dict[str, list[tuple[str, str]]]:
    """Every table of the DuckDB connection's ``raw`` schema: its columns and their DuckDB types."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in conn.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' order by table_name, ordinal_position").fetchall():
        tables.setdefault(table, []).append((column, data_type))
    return tables


def parquet_select(columns: list[tuple[str, str]]) -> str:
    """The columns to write to Parquet for Spark: JSON as text (Spark has no JSON type)."""
    return ", ".join(f'cast("{column}" as varchar) as "{column}"' if data_type == "JSON" else f'"{column}"'
                     for column, data_type in columns)


def plan_tasks(landing_dir: Path, sources: list[LandingSource], now: datetime | None = None) -> list[FileTask]:
    """A task per landing file, in discovery order, each a microsecond after the one before."""
    root = landing_dir.resolve()
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    tasks = []
    for number, landing_file in enumerate(discover_landing_files(landing_dir, sources)):
        rejection = None
        if not _inside(landing_file.path, root):
            # A symlink out of the landing folder: never opened (it could name any file on the machine).
            rejection = WholeFileRejection("outside_landing_dir", "a symlink to a file outside the landing folder: not read")
        tasks.append(FileTask(number, landing_file, now + timedelta(microseconds=number), rejection))
    return tasks


def land_file(plan: LandingPlan, task: FileTask) -> dict:
    """A Spark task: one file through the project's ingestion, its rows as Parquet in
    ``<staging>/<table>/<number>.parquet``. Returns what it did (``skipped`` when already landed)."""
    import duckdb

    from orchestration.privacy.screen import PrivacyScreen

    os.environ[MAX_CSV_COLUMNS_VARIABLE] = str(plan.max_csv_columns)  # the driver's limit, on any executor
    landing_file, rejection = task.landing_file, task.rejection
    if rejection is not None:
        sha = _recorded_unread(rejection.reason, rejection.detail)[0]
    else:
        try:
            sha = file_sha256(landing_file.path)
        except OSError as error:
            sha, rejection = _recorded_unread("unreadable_file", _unread_detail(error))
    if (landing_file.relative_path, sha) in plan.already:
        return {"number": task.number, "skipped": True}
    with tempfile.TemporaryDirectory(prefix="spark-landing-") as scratch, \
            duckdb.connect(config={"threads": 1, "temp_directory": scratch}) as conn:
        create_raw_tables(conn, list(plan.sources))
        screen = PrivacyScreen.from_rows(conn, plan.salt, plan.rules, list(plan.screened)) if plan.screened else None
        result = _load_file(conn, landing_file, sha, plan.identity, screen, None, rejection, task.loaded_at)
        [load_id] = conn.execute(f"select load_id from raw.{LOADED_FILES}").fetchone()
        for table, columns in raw_table_columns(conn).items():
            if conn.execute(f'select count(*) from raw."{table}"').fetchone()[0]:
                folder = plan.staging_dir / table
                folder.mkdir(parents=True, exist_ok=True)
                target = quote_literal(str(folder / f"{task.number:06d}.parquet"))
                conn.execute(f'copy (select {parquet_select(columns)} from raw."{table}") to {target} (format parquet)')
    return {"number": task.number, "skipped": False, "load_id": load_id, "relative_path": result.relative_path,
            "accepted": dict(result.accepted), "rejected": dict(result.rejected)}


def raw_tables_on_spark(sources: list[LandingSource]) -> dict[str, list[tuple[str, str]]]:
    """The raw tables the ingestion declares, with Spark's types for their columns."""
    import duckdb

    from orchestration.spark.build import SPARK_TYPES

    with duckdb.connect() as conn:
        create_raw_tables(conn, sources)
        return {table: [(column, SPARK_TYPES.get(data_type, "string")) for column, data_type in columns]
                for table, columns in raw_table_columns(conn).items()}


def _relation(table: str, schema: str = RAW_SCHEMA) -> str:
    return f"{schema}.{table}"


def remove_loads(spark, tables: list[str], load_ids: list[str], schema: str = RAW_SCHEMA,
                 file_format: str = "parquet") -> None:
    """Rows of ``load_ids`` out of ``tables`` (a run that died before recording its files). A Parquet
    table cannot delete (nor can every format): it is rewritten beside itself without them, then put in its place; a run
    that dies in between finds the rewritten copy and finishes the swap."""
    from pyspark.sql import functions as F

    for table in tables:
        relation, kept = _relation(table, schema), _relation(f"{table}__kept", schema)
        if spark.catalog.tableExists(kept):
            if spark.catalog.tableExists(relation):  # died while writing the copy: write it again
                spark.sql(f"drop table {kept}")
            else:  # died after dropping the table: the copy is whole
                spark.sql(f"alter table {kept} rename to {relation}")
                continue
        if not spark.catalog.tableExists(relation) or not spark.table(relation).where(F.col("load_id").isin(load_ids)).limit(1).count():
            continue
        spark.table(relation).where(~F.col("load_id").isin(load_ids)).write.format(file_format).saveAsTable(kept)
        spark.sql(f"drop table {relation}")
        spark.sql(f"alter table {kept} rename to {relation}")


def append(spark, folder: Path, table: str, columns: list[tuple[str, str]]) -> None:
    """The staged Parquet files of ``folder`` appended to ``raw.<table>``, typed as it is."""
    from pyspark.sql import functions as F

    rows = spark.read.parquet(str(folder))
    rows.select([F.col(column).cast(data_type).alias(column) for column, data_type in columns]) \
        .write.insertInto(_relation(table))


def land(spark, landing_dir: Path, staging_dir: Path, pending_file: Path, identity: IdentityFields,
         sources: list[LandingSource], rules: dict, screened: list[tuple[str, str, str]],
         salt: str | None, file_format: str = "parquet") -> IngestionSummary:
    """Lands every file of ``landing_dir`` not landed before into Spark's raw tables, made in
    ``file_format`` (the project's ``spark_file_format``) when new (see the module)."""
    tables = raw_tables_on_spark(sources)
    spark.sql(f"create database if not exists {RAW_SCHEMA}")
    for table, columns in tables.items():
        spark.sql(f"create table if not exists {_relation(table)} "
                  f"({', '.join(f'`{column}` {data_type}' for column, data_type in columns)}) using {file_format}")
    if pending_file.exists():
        remove_loads(spark, list(tables), json.loads(pending_file.read_text()), file_format=file_format)
        pending_file.unlink()
    already = frozenset((row[0], row[1]) for row in
                        spark.table(_relation(LOADED_FILES)).select("file_path", "content_sha256").collect())
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir(parents=True)
    tasks = plan_tasks(landing_dir, sources)
    plan = LandingPlan(staging_dir, identity, tuple(sources), rules, tuple(screened), salt, already, max_csv_columns())
    outcomes = (spark.sparkContext.parallelize(tasks, max(len(tasks), 1)).map(partial(land_file, plan)).collect()
                if tasks else [])
    summary = IngestionSummary()
    landed = sorted((outcome for outcome in outcomes if not outcome["skipped"]), key=lambda outcome: outcome["number"])
    summary.files_skipped = len(outcomes) - len(landed)
    summary.files_loaded = [FileResult(outcome["relative_path"], Counter(outcome["accepted"]), Counter(outcome["rejected"]))
                            for outcome in landed]
    if landed:
        pending_file.parent.mkdir(parents=True, exist_ok=True)
        pending_file.write_text(json.dumps([outcome["load_id"] for outcome in landed]))
        # raw.loaded_files last: a file is recorded only once all its rows are in.
        for table in sorted(tables, key=lambda name: name == LOADED_FILES):
            if (staging_dir / table).is_dir():
                append(spark, staging_dir / table, table, tables[table])
        pending_file.unlink()
    shutil.rmtree(staging_dir, ignore_errors=True)
    return summary
