"""Landing files → Spark's ``raw`` tables, read by Spark's executors (the ``spark`` target).

The driver lists the landing folder (names only: it opens no file) and hands each file to a Spark
task of its own. The task, on whichever executor runs it, hashes the file and, when that
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

Privacy: the landing screen (the erased and locked identifiers that ``DUCKDB_PATH``'s privacy
tables hold) rejects new lines at the door, in the tasks. Rows landed before an identifier was
erased are removed from every raw table by their line key (``erase_landed``), found by the same
screen in Spark tasks.
"""

from __future__ import annotations

import hashlib
import itertools
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
    create_raw_tables,
    discover_landing_files,
    hash_or_reject,
    load_file,
    max_csv_columns,
)
from orchestration.landing.sources import LandingSource

RAW_SCHEMA = "raw"
# Beside the warehouse: the line keys a privacy request erased, until every model is built without them.
PENDING_ERASURE_FILE = "erasure-pending.json"
# Beside the warehouse: the load ids of a landing cut short (its rows go first in the next), and the
# fingerprint of the erased identifiers the landed rows were last scanned for (``erase_landed``).
LANDING_PENDING_FILE = "landing-pending.json"
ERASURES_SCANNED_FILE = "landing-erased.sha256"
LOADED_FILES = "loaded_files"
# DuckDB type → Spark type of the raw tables (JSON is text on Spark).
SPARK_TYPES = {
    "VARCHAR": "string", "JSON": "string", "BIGINT": "bigint", "INTEGER": "int", "BOOLEAN": "boolean",
    "DOUBLE": "double", "DATE": "date", "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamp",
    "HUGEINT": "decimal(38,0)", "SMALLINT": "smallint", "FLOAT": "float",
}


@dataclass(frozen=True)
class FileTask:
    """One landing file for one Spark task."""

    number: int  # its place in discovery order: its Parquet files' name
    landing_file: LandingFile
    loaded_at: datetime


@dataclass(frozen=True)
class LandingPlan:
    """What every task needs besides its file (shipped to the executors with the task)."""

    landing_dir: Path  # resolved
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
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    return [FileTask(number, landing_file, now + timedelta(microseconds=number))
            for number, landing_file in enumerate(discover_landing_files(landing_dir, sources))]


def land_file(plan: LandingPlan, task: FileTask) -> dict:
    """A Spark task: one file through the project's ingestion, its rows as Parquet in
    ``<staging>/<table>/<number>.parquet``. Returns what it did (``skipped`` when already landed)."""
    import duckdb

    from orchestration.privacy.screen import PrivacyScreen

    os.environ[MAX_CSV_COLUMNS_VARIABLE] = str(plan.max_csv_columns)  # the driver's limit, on any executor
    sha, rejection = hash_or_reject(task.landing_file, plan.landing_dir)
    if (task.landing_file.relative_path, sha) in plan.already:
        return {"number": task.number, "skipped": True}
    with tempfile.TemporaryDirectory(prefix="spark-landing-") as scratch, \
            duckdb.connect(config={"threads": 1, "temp_directory": scratch}) as conn:
        create_raw_tables(conn, list(plan.sources))
        screen = PrivacyScreen.from_rows(conn, plan.salt, plan.rules, list(plan.screened)) if plan.screened else None
        result = load_file(conn, task.landing_file, sha, plan.identity, screen, None, rejection, task.loaded_at)
        [(load_id,)] = conn.execute(f"select load_id from raw.{LOADED_FILES}").fetchall()
        for table, columns in raw_table_columns(conn).items():
            if conn.execute(f'select count(*) from raw."{table}"').fetchall()[0][0]:
                folder = plan.staging_dir / table
                folder.mkdir(parents=True, exist_ok=True)
                target = quote_literal(str(folder / f"{task.number:06d}.parquet"))
                conn.execute(f'copy (select {parquet_select(columns)} from raw."{table}") to {target} (format parquet)')
    return {"number": task.number, "skipped": False, "load_id": load_id, "relative_path": result.relative_path,
            "accepted": dict(result.accepted), "rejected": dict(result.rejected)}


def raw_tables_on_spark(sources: list[LandingSource]) -> dict[str, list[tuple[str, str]]]:
    """The raw tables the ingestion declares, with Spark's types for their columns."""
    import duckdb

    with duckdb.connect() as conn:
        create_raw_tables(conn, sources)
        return {table: [(column, SPARK_TYPES.get(data_type, "string")) for column, data_type in columns]
                for table, columns in raw_table_columns(conn).items()}


def _relation(table: str, schema: str = RAW_SCHEMA) -> str:
    return f"{schema}.{table}"


def finish_swaps(spark, tables: list[str], schema: str = RAW_SCHEMA) -> None:
    """A rewrite (``_rewrite``) cut short is finished: a copy beside a table that still exists was
    cut short while being written and goes; a copy without its table is whole and takes its place.
    Before any missing table is made: an empty new table would pass for the one the copy replaces."""
    existing = {table.name for table in spark.catalog.listTables(schema)}
    for table in tables:
        if f"{table}__kept" in existing:
            relation, kept = _relation(table, schema), _relation(f"{table}__kept", schema)
            if table in existing:
                spark.sql(f"drop table {kept}")
            else:
                spark.sql(f"alter table {kept} rename to {relation}")


def _rewrite(spark, relation: str, rows, file_format: str) -> None:
    """``relation`` replaced by ``rows`` (read from it). A Parquet table cannot delete (nor can every
    format): the rows are written beside it, then swapped in (``finish_swaps`` after a crash)."""
    kept = f"{relation}__kept"
    rows.write.format(file_format).saveAsTable(kept)
    spark.sql(f"drop table {relation}")
    spark.sql(f"alter table {kept} rename to {relation}")


def remove_loads(spark, tables: list[str], load_ids: list[str], schema: str = RAW_SCHEMA,
                 file_format: str = "parquet") -> None:
    """Rows of ``load_ids`` out of ``tables`` (a run that died before recording its files)."""
    from pyspark.sql import functions as F

    for table in tables:
        rows = spark.table(_relation(table, schema))
        if rows.where(F.col("load_id").isin(load_ids)).limit(1).count():
            _rewrite(spark, _relation(table, schema), rows.where(~F.col("load_id").isin(load_ids)), file_format)


@dataclass(frozen=True)
class ErasureScan:
    """What the executors need to find landed lines that carry an erased identifier."""

    rules: dict
    tombstones: tuple[tuple[str, str, str], ...]  # (type, salted hash, reason) of erased identifiers
    salt: str


# The columns a partition's rows hold, per kind of raw table (erased_lines).
SCANNED_COLUMNS = {"contacts": ("load_id", "line_number", "email", "phone", "traits"),
                   "lines": ("load_id", "line_number", "text")}


def erased_lines(scan: ErasureScan, kind: str, fields: list[tuple[str, str]] | None, rows) -> list[tuple[str, int]]:
    """A Spark task: (load_id, line_number) of the rows of one partition that carry an erased
    identifier, found by the landing screen's own SQL. ``kind`` is ``contacts`` or ``lines`` (the
    rows hold ``SCANNED_COLUMNS[kind]``; a line's identifiers are at ``fields`` of its text, or
    any quoted token when None)."""
    import duckdb
    import pandas as pd

    from orchestration.privacy.screen import PrivacyScreen

    found = []
    with duckdb.connect(config={"threads": 1}) as conn:
        screen = PrivacyScreen.from_rows(conn, scan.salt, scan.rules, list(scan.tombstones))
        for chunk in iter(lambda: list(itertools.islice(rows, 100_000)), []):
            batch = pd.DataFrame.from_records([tuple(row) for row in chunk], columns=SCANNED_COLUMNS[kind])
            batch["row_id"] = range(len(batch))
            conn.register("batch", batch)
            if kind == "contacts":
                conn.execute("create or replace temp table landing_contacts as "
                             "select row_id as line_number, email, phone, traits from batch")
                identifiers = screen.contact_identifiers_sql()
            else:
                conn.execute("create or replace temp table landing_lines as "
                             "select row_id as line_number, text as line from batch where text is not null")
                identifiers = screen.line_identifiers_sql("landing_lines", fields, "true")
            if identifiers:
                hits = conn.execute(f"select line_number from ({screen.hits_sql(identifiers)})", {"salt": scan.salt}).fetchall()
                found += [(batch.at[row_id, "load_id"], int(batch.at[row_id, "line_number"])) for (row_id,) in hits]
            conn.unregister("batch")
    return found


def scanned_as(table: str, screen, sources: list[LandingSource]) -> tuple[str, list | None, str | None] | None:
    """How ``erase_landed`` reads a raw table: (kind, where a line's identifiers are, the column
    that holds the line), as the landing screen reads a file of that table; None: not scanned."""
    from orchestration.landing.ingestion import CONTACTS_TABLE, MESSAGE_TABLES

    if table == CONTACTS_TABLE:
        return "contacts", None, None
    if table == "rejected_records":  # never parsed: any quoted token, as the screen reads them
        return "lines", None, "raw_text"
    if table in MESSAGE_TABLES.values():
        return "lines", screen.event_fields(), "payload"
    source = next((source for source in sources if source.table == table), None)
    if source is not None:
        return "lines", source.identifier_expressions("line") or None, "payload"
    return None


def erased_identifiers(screened: list[tuple[str, str, str]]) -> tuple[tuple[tuple[str, str, str], ...], str]:
    """The erased identifiers among the screened ones (privacy_screen_rows), and their fingerprint."""
    from orchestration.privacy.requests import ERASED_REASON

    tombstones = tuple(sorted(tuple(row) for row in screened if row[2] == ERASED_REASON))
    return tombstones, hashlib.sha256(json.dumps(tombstones).encode()).hexdigest()


def unfinished_work(state_dir: Path, screened: list[tuple[str, str, str]]) -> list[str]:
    """What the next landing must do even when no file is new (``state_dir`` keeps what the last
    ones left): rows of a landing cut short, lines of an erasure not yet built away, landed rows not
    yet scanned for the identifiers erased since. Empty: nothing."""
    tombstones, fingerprint = erased_identifiers(screened)
    scanned = state_dir / ERASURES_SCANNED_FILE
    return [why for why, left in [
        ("a landing was cut short", (state_dir / LANDING_PENDING_FILE).exists()),
        ("an erasure's lines wait to be removed", (state_dir / PENDING_ERASURE_FILE).exists()),
        ("identifiers were erased since the landed rows were last scanned",
         bool(tombstones) and not (scanned.exists() and scanned.read_text() == fingerprint)),
    ] if left]


def erase_landed(spark, tables: list[str], sources: list[LandingSource], rules: dict,
                 screened: list[tuple[str, str, str]], salt: str | None, done_file: Path,
                 file_format: str = "parquet") -> dict[str, int]:
    """Rows already landed that carry an identifier a privacy request erased, removed from every raw
    table by their line key (the DuckDB job's erasure does this by lineage in DuckDB; Spark's raw
    tables are Spark's own). Runs when the erased identifiers changed since the last time
    (``done_file`` holds their fingerprint); returns the rows removed per table."""
    from pyspark.sql import functions as F

    from orchestration.identity.rules import IdentityRules
    from orchestration.privacy.screen import PrivacyScreen

    tombstones, fingerprint = erased_identifiers(screened)
    if not tombstones or (done_file.exists() and done_file.read_text() == fingerprint):
        return {}
    scan, screen = ErasureScan(rules, tombstones, salt), PrivacyScreen(salt, IdentityRules.parse(rules))
    removed = {}
    for table in tables:
        scanned = scanned_as(table, screen, sources)
        if scanned is None:
            continue
        kind, fields, text = scanned
        rows = spark.table(_relation(table))
        read = rows.select(*SCANNED_COLUMNS[kind]) if text is None else \
            rows.select("load_id", "line_number", F.col(text).alias("text"))
        keys = read.rdd.mapPartitions(lambda part, kind=kind, fields=fields: erased_lines(scan, kind, fields, part)).collect()
        if keys:  # read from the table: no need to look for them again
            removed[table] = len(keys)
            _rewrite_without(spark, table, keys, file_format)
    done_file.parent.mkdir(parents=True, exist_ok=True)
    done_file.write_text(fingerprint)
    return removed


def remove_lines(spark, table: str, keys: list, file_format: str = "parquet") -> int:
    """The rows of ``raw.<table>`` whose (load_id, line_number) is one of ``keys`` removed (the
    table rewritten only when it holds one); returns how many there were."""
    from pyspark.sql import functions as F

    found = spark.table(_relation(table)).join(F.broadcast(_line_keys(spark, keys)), ["load_id", "line_number"],
                                                "left_semi").count()
    if found:
        _rewrite_without(spark, table, keys, file_format)
    return found


def _line_keys(spark, keys: list):
    return spark.createDataFrame([(load_id, int(line)) for load_id, line in keys], "load_id string, line_number bigint")


def _rewrite_without(spark, table: str, keys: list, file_format: str) -> None:
    """``raw.<table>`` rewritten without the rows of ``keys`` (line keys it holds)."""
    from pyspark.sql import functions as F

    rows = spark.table(_relation(table))
    # (a join on named columns puts them first: the table's own order is restored)
    kept = rows.join(F.broadcast(_line_keys(spark, keys)), ["load_id", "line_number"], "left_anti").select(*rows.columns)
    _rewrite(spark, _relation(table), kept, file_format)


def remove_pending_lines(spark, pending_file: Path, file_format: str = "parquet") -> dict[str, int]:
    """The lines a privacy request erased in the control database (``pending_file``: raw table →
    line keys, ``erasure.add_pending_lines``) removed from Spark's raw tables; returns the rows
    removed per table. The file stays until every model has been built again without them."""
    if not pending_file.exists():
        return {}
    pending = json.loads(pending_file.read_text())
    finish_swaps(spark, list(pending))
    existing = {table.name for table in spark.catalog.listTables(RAW_SCHEMA)}
    removed = {table: remove_lines(spark, table, keys, file_format)
               for table, keys in sorted(pending.items()) if table in existing}
    return {table: rows for table, rows in removed.items() if rows}


def append(spark, folder: Path, table: str, columns: list[tuple[str, str]]) -> None:
    """The staged Parquet files of ``folder`` appended to ``raw.<table>``, typed as it is."""
    from pyspark.sql import functions as F

    rows = spark.read.parquet(str(folder))
    rows.select([F.col(column).cast(data_type).alias(column) for column, data_type in columns]) \
        .write.insertInto(_relation(table))


def land(spark, landing_dir: Path, staging_dir: Path, state_dir: Path, identity: IdentityFields,
         sources: list[LandingSource], rules: dict, screened: list[tuple[str, str, str]],
         salt: str | None, file_format: str = "parquet") -> tuple[IngestionSummary, dict[str, int]]:
    """Lands every file of ``landing_dir`` not landed before into Spark's raw tables, made in
    ``file_format`` (the project's ``spark_file_format``) when new (see the module), after removing
    the rows of erased identifiers (``erase_landed``). ``state_dir`` keeps the pending list and the
    erasures' fingerprint. Returns what landed, and the rows erased per table."""
    pending_file = state_dir / LANDING_PENDING_FILE
    tables = raw_tables_on_spark(sources)
    spark.sql(f"create database if not exists {RAW_SCHEMA}")
    finish_swaps(spark, list(tables))
    for table, columns in tables.items():
        spark.sql(f"create table if not exists {_relation(table)} "
                  f"({', '.join(f'`{column}` {data_type}' for column, data_type in columns)}) using {file_format}")
    if pending_file.exists():
        remove_loads(spark, list(tables), json.loads(pending_file.read_text()), file_format=file_format)
        pending_file.unlink()
    # an erasure a privacy request left to Spark (a run that died before its rebuild), then the scan
    erased = Counter(remove_pending_lines(spark, state_dir / PENDING_ERASURE_FILE, file_format))
    erased.update(erase_landed(spark, list(tables), sources, rules, screened, salt,
                               state_dir / ERASURES_SCANNED_FILE, file_format))
    already = frozenset((row[0], row[1]) for row in
                        spark.table(_relation(LOADED_FILES)).select("file_path", "content_sha256").collect())
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir(parents=True)
    tasks = plan_tasks(landing_dir, sources)
    plan = LandingPlan(landing_dir.resolve(), staging_dir, identity, tuple(sources), rules, tuple(screened), salt,
                       already, max_csv_columns())
    outcomes = (spark.sparkContext.parallelize(tasks, max(len(tasks), 1)).map(partial(land_file, plan)).collect()
                if tasks else [])
    summary = IngestionSummary()
    landed = sorted((outcome for outcome in outcomes if not outcome["skipped"]), key=lambda outcome: outcome["number"])
    summary.files_skipped = len(outcomes) - len(landed)
    summary.files_loaded = [FileResult(outcome["relative_path"], Counter(outcome["accepted"]), Counter(outcome["rejected"]))
                            for outcome in landed]
    if landed:
        state_dir.mkdir(parents=True, exist_ok=True)
        pending_file.write_text(json.dumps([outcome["load_id"] for outcome in landed]))
        # raw.loaded_files last: a file is recorded only once all its rows are in.
        for table in sorted(tables, key=lambda name: name == LOADED_FILES):
            if (staging_dir / table).is_dir():
                append(spark, staging_dir / table, table, tables[table])
        pending_file.unlink()
    shutil.rmtree(staging_dir, ignore_errors=True)
    return summary, dict(erased)
