"""Landing files → raw tables: the first step of the asset graph."""

from collections import Counter

import dagster as dg

from orchestration.core import settings
from orchestration.core.migrations import upgrade
from orchestration.core.warehouse import connect
from orchestration.landing.ingestion import (
    CONTACTS_TABLE,
    MESSAGE_TABLES,
    RAW_TABLES,
    IdentityFields,
    ingest_landing_dir,
)
from orchestration.landing.sources import registered_sources
from orchestration.location.resources import Warehouse
from orchestration.location.run_metadata import markdown_bars
from orchestration.privacy.requests import privacy_salt
from orchestration.privacy.screen import PrivacyScreen
from orchestration.spark import job as spark_job

DUCKDB_POOL = "duckdb"  # one op at a time holds the DuckDB file (one writer per file)

AUDIT_TABLES = {
    "loaded_files": "Every landing file loaded: path, size, SHA-256, lines accepted and rejected.",
    "rejected_records": "Every landing line or file that could not be accepted, with file, line, raw text and reason.",
}
RAW_TABLE_DESCRIPTIONS = {
    **{table: f"Segment {message_type} calls, one row per accepted line, JSON payload kept."
       for message_type, table in MESSAGE_TABLES.items()},
    CONTACTS_TABLE: "Contact-list rows (list name, row number, e-mail, phone, other columns as traits).",
    **{source.table: f"Records of the landing source '{source.name}' ({source.format} files in "
                     f"LANDING_DIR/{source.folder}/), one row per accepted line, JSON payload kept."
       for source in registered_sources()},
}


@dg.multi_asset(
    name="ingest_landing_files",
    group_name="landing",
    pool=DUCKDB_POOL,
    specs=[
        dg.AssetSpec(["raw", table], description=description, kinds={settings.warehouse_target()})
        for table, description in {**RAW_TABLE_DESCRIPTIONS, **AUDIT_TABLES}.items()
    ],
)
def ingest_landing_files(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Load the landing files not loaded before (events JSONL and contact CSVs) into ``raw``."""
    if spark_job.on_spark():
        yield from land_on_spark(context)
        return
    with connect(warehouse.database) as conn:
        upgrade(conn, context.log.info)  # an older warehouse's tables to the current schema version
        # Accept what the identity rules can use (custom identifier types included).
        identity = IdentityFields.from_rules(settings.identity_rules())
        # Lines of erased or locked identities are rejected at the door (privacy requests).
        screen = PrivacyScreen.load(conn, privacy_salt(warehouse.database), settings.identity_rules())
        sources = registered_sources()
        summary = ingest_landing_dir(conn, warehouse.landing, identity, sources, screen)
        source_tables = [source.table for source in sources]
        row_counts = raw_row_counts(conn, [*RAW_TABLES, *source_tables, *AUDIT_TABLES])
    context.log.info(
        f"{len(summary.files_loaded)} new file(s), {summary.files_skipped} already loaded; "
        f"accepted {dict(summary.accepted)}, rejected {dict(summary.rejected)}"
    )
    yield from materializations([f.relative_path for f in summary.files_loaded], summary.files_skipped,
                                summary.accepted, summary.rejected, row_counts, [*RAW_TABLES, *source_tables])


def land_on_spark(context: dg.AssetExecutionContext):
    """The Spark target: Spark lands the files (orchestration/spark/job.py); the row counts are read
    from its tables through the control database's views."""
    landed = spark_job.land(context.log.info)
    source_tables = [source.table for source in registered_sources()]
    with connect(settings.duckdb_path(), read_only=True) as conn:
        row_counts = raw_row_counts(conn, [*RAW_TABLES, *source_tables, *AUDIT_TABLES])
    if landed["erased"]:
        context.log.info(f"erased {sum(landed['erased'].values())} landed row(s) of erased identifiers")
    context.log.info(f"{len(landed['files_loaded'])} new file(s), {landed['files_skipped']} already loaded; "
                     f"accepted {landed['accepted']}, rejected {landed['rejected']}")
    yield from materializations(landed["files_loaded"], landed["files_skipped"], Counter(landed["accepted"]),
                                Counter(landed["rejected"]), row_counts, [*RAW_TABLES, *source_tables])


def raw_row_counts(conn, tables: list[str]) -> dict[str, int]:
    return {table: conn.execute(f"select count(*) from raw.{table}").fetchone()[0] for table in tables}


def materializations(files_loaded: list[str], files_skipped: int, accepted: Counter, rejected: Counter,
                     row_counts: dict[str, int], tables: list[str]):
    """The landing's materializations: every raw table with its rows, the loaded files and the rejections."""
    for table in tables:
        yield dg.MaterializeResult(
            asset_key=["raw", table],
            metadata={"dagster/row_count": row_counts[table], "rows_added": accepted.get(table, 0)},
        )
    yield dg.MaterializeResult(
        asset_key=["raw", "loaded_files"],
        metadata={
            "dagster/row_count": row_counts["loaded_files"],
            "files_loaded": len(files_loaded),
            "files_skipped": files_skipped,
            "new_files": dg.MetadataValue.md("\n".join(f"- `{path}`" for path in files_loaded) or "none"),
        },
    )
    yield dg.MaterializeResult(
        asset_key=["raw", "rejected_records"],
        metadata={
            "dagster/row_count": row_counts["rejected_records"],
            "lines_accepted": sum(accepted.values()),
            "lines_rejected": sum(rejected.values()),
            "rejected_by_reason": dg.MetadataValue.json(dict(sorted(rejected.items()))),
            "lines_by_outcome": dg.MetadataValue.md(
                markdown_bars([(f"accepted → raw.{table}", n) for table, n in sorted(accepted.items())]
                              + [(f"rejected: {reason}", n) for reason, n in sorted(rejected.items())], "lines")
            ),
        },
    )
