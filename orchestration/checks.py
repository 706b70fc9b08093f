"""Asset checks that reconcile counts from landing to marts: nothing lost, nothing doubled."""


import dagster as dg

from orchestration.assets.landing import DUCKDB_POOL
from orchestration.ingestion import MESSAGE_TABLES
from orchestration.landing_sources import registered_sources
from orchestration.resources import Warehouse
from orchestration.warehouse import connect, table_exists

# The raw message tables, the registered landing sources' tables (vars: landing_sources) included.
_MESSAGE_RAW_TABLES = [*MESSAGE_TABLES.values(), *(source.table for source in registered_sources())]
_RAW_ROWS_BY_LOAD = " union all ".join(
    f"select load_id from raw.{table}" for table in [*_MESSAGE_RAW_TABLES, "contacts"]
)

# Lines erased by privacy requests (privacy.erased_lines) left the raw tables on purpose.
_NO_ERASED_LINES = "select null::varchar as load_id, 0 as accepted_lines, 0 as rejected_lines where false"
_ERASED_LINES = "select load_id, accepted_lines, rejected_lines from privacy.erased_lines"

LANDED_LINES_SQL = f"""
with erased as (
    select load_id, sum(accepted_lines) as accepted, sum(rejected_lines) as rejected from ({{erased_lines}}) group by 1
),
raw_rows as (
    select load_id, count(*) as accepted from ({_RAW_ROWS_BY_LOAD}) as accepted_rows group by 1
),
rejected_rows as (
    select load_id, count(*) as rejected from raw.rejected_records group by 1
)
select
    files.file_path,
    files.lines_total,
    files.lines_accepted,
    coalesce(raw_rows.accepted, 0) as raw_rows,
    files.lines_rejected,
    coalesce(rejected_rows.rejected, 0) as rejected_rows
from raw.loaded_files as files
left join raw_rows using (load_id)
left join rejected_rows using (load_id)
left join erased using (load_id)
where files.lines_total <> files.lines_accepted + files.lines_rejected
   or files.lines_accepted <> coalesce(raw_rows.accepted, 0) + coalesce(erased.accepted, 0)
   or files.lines_rejected <> coalesce(rejected_rows.rejected, 0) + coalesce(erased.rejected, 0)
"""

# Accepted messages: distinct message ids over the raw message tables; contact records: the rows of
# the newest load of each list file (an older version of a list is replaced, not added). Both sides
# are counted per message id in one aggregate over their union (at 12 M messages, one hash table
# instead of two de-duplications and two anti-joins).
_RAW_MESSAGE_SIGHTINGS = " union all ".join(
    f"select message_id, 1 as landed, 0 as copies, 0 as contact_copies from raw.{t}" for t in _MESSAGE_RAW_TABLES
)
PROFILE_EVENTS_RECONCILIATION_SQL = f"""
with sightings as (
    {_RAW_MESSAGE_SIGHTINGS}
    union all
    select message_id, 0, 1, case when source = 'contacts' then 1 else 0 end from marts.profile_events
),
per_message as (
    select message_id, max(landed) as landed, sum(copies) as copies, sum(contact_copies) as contact_copies
    from sightings
    group by message_id
),
latest_contact_loads as (
    select load_id from (
        select load_id, row_number() over (partition by file_path order by loaded_at desc, load_id desc) as recency
        from (select distinct file_path, load_id, loaded_at from raw.contacts) as loads
    ) as ranked where recency = 1
)
select
    count(*) filter (where landed = 1) as accepted_messages,
    (select count(*) from raw.contacts where load_id in (select load_id from latest_contact_loads))
        as accepted_contact_records,
    coalesce(sum(copies), 0) as profile_events,
    count(*) filter (where landed = 1 and copies = 0) as missing,
    coalesce(sum(copies - contact_copies) filter (where landed = 0), 0) as unexpected,
    coalesce(sum(copies - 1) filter (where copies > 1), 0) as duplicated,
    coalesce(sum(contact_copies), 0) as contact_events
from per_message
"""


def profile_events_reconciled(counts: dict) -> bool:
    """Whether the counts of PROFILE_EVENTS_RECONCILIATION_SQL say every accepted message and current
    contact record is in marts.profile_events exactly once, and nothing else is."""
    return (
        counts["missing"] == 0
        and counts["unexpected"] == 0
        and counts["duplicated"] == 0
        and counts["contact_events"] == counts["accepted_contact_records"]
        and counts["profile_events"] == counts["accepted_messages"] + counts["accepted_contact_records"]
    )


@dg.asset_check(
    asset=dg.AssetKey(["raw", "loaded_files"]),
    name="landed_lines_reconcile",
    description="Every landed line is either in a raw table or in raw.rejected_records (or was erased by a "
                "privacy request), per file.",
    blocking=True,
    pool=DUCKDB_POOL,
)
def landed_lines_reconcile(warehouse: Warehouse) -> dg.AssetCheckResult:
    with connect(warehouse.database) as conn:
        erased = _ERASED_LINES if table_exists(conn, "privacy", "erased_lines") else _NO_ERASED_LINES
        mismatches = conn.execute(LANDED_LINES_SQL.replace("{erased_lines}", erased)).fetchall()
        totals = conn.execute(
            "select count(*), coalesce(sum(lines_total), 0), coalesce(sum(lines_accepted), 0), "
            "coalesce(sum(lines_rejected), 0) from raw.loaded_files"
        ).fetchone()
    files, lines, accepted, rejected = totals
    return dg.AssetCheckResult(
        passed=not mismatches,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "files": files,
            "lines": lines,
            "accepted": accepted,
            "rejected": rejected,
            "files_not_reconciled": dg.MetadataValue.json([list(map(str, row)) for row in mismatches]),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(["marts", "profile_events"]),
    name="accepted_messages_reconcile",
    description="Every accepted message (and current contact record) is in marts.profile_events exactly once.",
    pool=DUCKDB_POOL,
)
def accepted_messages_reconcile(warehouse: Warehouse) -> dg.AssetCheckResult:
    with connect(warehouse.database) as conn:
        if not table_exists(conn, "marts", "profile_events"):
            return dg.AssetCheckResult(passed=False, metadata={"error": "marts.profile_events does not exist"})
        cursor = conn.execute(PROFILE_EVENTS_RECONCILIATION_SQL)
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    return dg.AssetCheckResult(passed=profile_events_reconciled(row), severity=dg.AssetCheckSeverity.ERROR,
                               metadata=row)
