"""Asset checks that reconcile counts from landing to marts: nothing lost, nothing doubled."""

from datetime import datetime, timezone

import dagster as dg

from orchestration.computed.landed import selects_sql
from orchestration.core.warehouse import connect, table_exists
from orchestration.landing.ingestion import MESSAGE_TABLES
from orchestration.landing.sources import registered_sources
from orchestration.location import build_state
from orchestration.location.assets.landing import DUCKDB_POOL
from orchestration.location.resources import Warehouse

ACCEPTED_MESSAGES_CHECK = "accepted_messages_reconcile"
MESSAGE_COPIES_CHECK = "message_copies_agree"
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

# Accepted messages: distinct message ids over the raw message tables, counted per message id with
# their profile events in one aggregate over their union (at 12 M messages, one hash table instead of
# two de-duplications and two anti-joins). Contact records: the rows of the newest load of each list
# file (an older version of a list is replaced, not added), counted by a statement of their own: in
# the same statement, DuckDB 2.0 ran out of a 3 GB limit at 5 M people, apart both need under 2 GB.
#
# After a build, only the messages landed or written since the check last passed ($since) are
# reconciled, against every copy of them (the contact side is counted whole: lists are replaced,
# not added to); the whole warehouse when it never passed, after a --full-refresh build, and in the
# whole-warehouse verification (orchestration/location/verify.py).
_IN_SCOPE = " and message_id in (select message_id from in_scope)"
_SCOPE = " union all ".join(
    [*(f"select message_id from raw.{t} where loaded_at >= $since" for t in _MESSAGE_RAW_TABLES),
     "select message_id from marts.profile_events where updated_at >= $since and source <> 'contacts'"]
)


def profile_events_reconciliation_sql(scoped: bool) -> str:
    """Counts of accepted messages and their profile events (profile_events_counts): over the
    messages landed or written since ``$since`` when ``scoped``, else over the whole warehouse."""
    where = _IN_SCOPE if scoped else ""
    sightings = " union all ".join(
        f"select message_id, 1 as landed, 0 as copies, 0 as contact_copies from raw.{t} where true{where}"
        for t in _MESSAGE_RAW_TABLES)
    return f"""
with {f"in_scope as ({_SCOPE})," if scoped else ""}
sightings as (
    {sightings}
    union all
    select message_id, 0, 1, 0 from marts.profile_events where source <> 'contacts'{where}
    union all
    select message_id, 0, 1, 1 from marts.profile_events where source = 'contacts'
),
per_message as (
    select message_id, max(landed) as landed, sum(copies) as copies, sum(contact_copies) as contact_copies
    from sightings
    group by message_id
)
select
    count(*) filter (where landed = 1) as accepted_messages,
    coalesce(sum(copies), 0) as profile_events,
    count(*) filter (where landed = 1 and copies = 0) as missing,
    coalesce(sum(copies - contact_copies) filter (where landed = 0), 0) as unexpected,
    coalesce(sum(copies - 1) filter (where copies > 1), 0) as duplicated,
    coalesce(sum(contact_copies), 0) as contact_events
from per_message
"""


ACCEPTED_CONTACT_RECORDS_SQL = """
with latest_contact_loads as (
    select load_id from (
        select load_id, row_number() over (partition by file_path order by loaded_at desc, load_id desc) as recency
        from (select distinct file_path, load_id, loaded_at from raw.contacts) as loads
    ) as ranked where recency = 1
)
select count(*) as accepted_contact_records from raw.contacts where load_id in (select load_id from latest_contact_loads)
"""


def profile_events_counts(conn, since=None) -> dict:
    """The counts profile_events_reconciled judges: of the messages landed or written since ``since``
    (every message when None), and of the current contact records."""
    scoped = since is not None
    cursor = conn.execute(profile_events_reconciliation_sql(scoped), {"since": since} if scoped else None)
    counts = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    counts["accepted_contact_records"] = conn.execute(ACCEPTED_CONTACT_RECORDS_SQL).fetchone()[0]
    return counts


def profile_events_reconciled(counts: dict) -> bool:
    """Whether the counts (profile_events_counts) say every accepted message and current contact
    record is in marts.profile_events exactly once, and nothing else is."""
    return (
        counts["missing"] == 0
        and counts["unexpected"] == 0
        and counts["duplicated"] == 0
        and counts["contact_events"] == counts["accepted_contact_records"]
        and counts["profile_events"] == counts["accepted_messages"] + counts["accepted_contact_records"]
    )


def reconcile_landed_lines(database) -> tuple[bool, dict]:
    """Whether every landed line of every file is in a raw table, rejected or erased; with the counts."""
    with connect(database) as conn:
        erased = _ERASED_LINES if table_exists(conn, "privacy", "erased_lines") else _NO_ERASED_LINES
        mismatches = conn.execute(LANDED_LINES_SQL.replace("{erased_lines}", erased)).fetchall()
        totals = conn.execute(
            "select count(*), coalesce(sum(lines_total), 0), coalesce(sum(lines_accepted), 0), "
            "coalesce(sum(lines_rejected), 0) from raw.loaded_files"
        ).fetchone()
    files, lines, accepted, rejected = totals
    return not mismatches, {
        "files": files,
        "lines": lines,
        "accepted": accepted,
        "rejected": rejected,
        "files_not_reconciled": dg.MetadataValue.json([list(map(str, row)) for row in mismatches]),
    }


def reconcile_accepted_messages(database, since_last_pass: bool = False) -> tuple[bool, dict]:
    """Whether every accepted message (and current contact record) is in marts.profile_events exactly
    once; with the counts. ``since_last_pass``: the messages landed or written since this check last
    passed (recorded when it passes again)."""
    started = datetime.now(timezone.utc).replace(tzinfo=None)  # the time of loaded_at, updated_at
    with connect(database) as conn:
        if not table_exists(conn, "marts", "profile_events"):
            return False, {"error": "marts.profile_events does not exist"}
        since = build_state.check_passed_at(conn, ACCEPTED_MESSAGES_CHECK) if since_last_pass else None
        row = profile_events_counts(conn, since)
        passed = profile_events_reconciled(row)
        if since_last_pass and passed:
            build_state.record_check_passed(conn, ACCEPTED_MESSAGES_CHECK, started)
    row["messages_since"] = str(since) if since else "all"
    return passed, row


# The blocking reconciliation checks (asset key, check name → the function that runs one), for the
# whole-warehouse verification (orchestration/location/verify.py) too.
RECONCILIATIONS = {
    ("raw/loaded_files", "landed_lines_reconcile"): reconcile_landed_lines,
    ("marts/profile_events", ACCEPTED_MESSAGES_CHECK): reconcile_accepted_messages,
}


@dg.asset_check(
    asset=dg.AssetKey(["raw", "loaded_files"]),
    name="landed_lines_reconcile",
    description="Every landed line is either in a raw table or in raw.rejected_records (or was erased by a "
                "privacy request), per file.",
    blocking=True,
    pool=DUCKDB_POOL,
)
def landed_lines_reconcile(warehouse: Warehouse) -> dg.AssetCheckResult:
    passed, metadata = reconcile_landed_lines(warehouse.database)
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)


@dg.asset_check(
    asset=dg.AssetKey(["marts", "profile_events"]),
    name=ACCEPTED_MESSAGES_CHECK,
    description="Every accepted message (and current contact record) is in marts.profile_events exactly once: the "
                "messages landed or written since the check last passed (all of them in verify_warehouse).",
    pool=DUCKDB_POOL,
)
def accepted_messages_reconcile(warehouse: Warehouse) -> dg.AssetCheckResult:
    passed, metadata = reconcile_accepted_messages(warehouse.database, since_last_pass=True)
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)


# ---------------------------------------------------------------------------------------------
# Values the build goes on without, counted where people can see them (WARN: nothing is lost, but
# something arrived that the data's owner should look at). Examples are message ids only: the
# payloads hold personal data.
# ---------------------------------------------------------------------------------------------

EXAMPLES = 5  # message ids listed per problem

# Messages whose own times were passed over (see event_at_status in marts.profile_events).
EVENT_TIMES_SQL = f"""
select event_at_status, count(*) as messages, list(message_id order by message_id)[1:{EXAMPLES}] as examples
from marts.profile_events
where event_at_status in ('unparsable', 'out_of_range')
group by 1
order by 1
"""

# What a Segment message says, as far as the marts go: who, what, when. A redelivery may differ in
# transport (sentAt, receivedAt) and in context a proxy adds (library, ip): that is no conflict.
SEGMENT_CONTENT_PATHS = ("$.type", "$.event", "$.name", "$.userId", "$.anonymousId", "$.previousId", "$.groupId",
                         "$.properties", "$.traits", "$.context.traits", "$.timestamp", "$.originalTimestamp")


def _content(table: str) -> str:
    if table in MESSAGE_TABLES.values():
        paths = ", ".join("'" + path + "'" for path in SEGMENT_CONTENT_PATHS)
        return f"md5(json_extract(payload, [{paths}])::varchar)"
    return "md5(payload::varchar)"  # a registered source's record: all of it


def conflicting_copies_sql(tables: list[str], scoped: bool = False) -> str:
    """Message ids landed more than once with different content (SEGMENT_CONTENT_PATHS of a Segment
    message): the first received stands, the others are dropped. Only the ids seen more than once
    are compared (their content hashed, no other row's); when ``scoped``, only those with a copy
    landed since ``$since``."""
    landed_since = " union all ".join(f"select message_id from raw.{table} where loaded_at >= $since"
                                      for table in tables)
    where = " where message_id in (select message_id from landed_since)" if scoped else ""
    ids = " union all ".join(f"select message_id from raw.{table}{where}" for table in tables)
    copies = " union all ".join(f"select message_id, {_content(table)} as content from raw.{table} "
                                "where message_id in (select message_id from repeated)" for table in tables)
    return f"""
with {f"landed_since as materialized ({landed_since})," if scoped else ""}
repeated as materialized (
    select message_id from ({ids}) as landed group by 1 having count(*) > 1
),
conflicting as (
    select message_id, count(*) as copies
    from ({copies}) as copies
    group by 1
    having count(distinct content) > 1
)
select count(*) as message_ids, coalesce(sum(copies), 0) as copies,
       coalesce(list(message_id order by message_id)[1:{EXAMPLES}], []) as examples
from conflicting
"""


_TYPED_PROPERTY = {
    # what the compiled traits read as null (computed_compiler._typed): a value that is there, but not one
    "number": "try_cast({text} as double) is null",
    "timestamp": "try_cast({text} as timestamptz) is null",
    "boolean": "lower({text}) not in ('true', 'false')",
}


def _property_reads(trait) -> list[tuple[str, str]]:
    """(property path, type) of every event property a trait reads as a number, time or boolean."""
    from orchestration.computed.schema import comparisons

    reads = []
    if trait.value_kind == "property" and trait.value_type in _TYPED_PROPERTY:
        reads.append((trait.value, trait.value_type))
    reads += [(c.subject, c.value_type) for c in comparisons(trait.filter.where)
              if c.subject_kind == "property" and c.value_type in _TYPED_PROPERTY]
    return list(dict.fromkeys(reads))


def trait_values_sql(traits) -> tuple[str, list] | None:
    """Per trait, the events it reads (its events or message types) holding a property it reads as
    a number, time or boolean with a value that is not one (the trait takes it as null), and
    example message ids. None when no trait reads a typed property."""
    selects, params = [], []
    for trait in traits:
        reads = _property_reads(trait)
        if not reads:
            continue
        selected, selected_params = selects_sql(trait.filter.events, trait.filter.message_types)
        clauses, trait_params = [selected], [trait.name, *selected_params]
        text = "json_extract_string(properties, ?)"
        bad = " or ".join(f"({text} is not null and {_TYPED_PROPERTY[kind].format(text=text)})" for _, kind in reads)
        for path, _ in reads:
            trait_params += [f"$.{path}", f"$.{path}"]
        clauses.append(f"({bad})")
        selects.append(f"select ? as trait, count(*) as values_not_conforming, "
                       f"list(message_id order by message_id)[1:{EXAMPLES}] as examples "
                       f"from marts.profile_events where {' and '.join(clauses)}")
        params += trait_params
    if not selects:
        return None
    return f"select * from ({' union all '.join(selects)}) as per_trait where values_not_conforming > 0 order by trait", params


@dg.asset_check(
    asset=dg.AssetKey(["marts", "profile_events"]),
    name="event_times_usable",
    description="Messages whose own times could not be used (event_at_status: a time that does not parse, or one "
                "outside vars: plausible_event_years), counted with example message ids. event_at fell back to "
                "their next time, or the load time.",
    pool=DUCKDB_POOL,
)
def event_times_usable(warehouse: Warehouse) -> dg.AssetCheckResult:
    with connect(warehouse.database) as conn:
        rows = conn.execute(EVENT_TIMES_SQL).fetchall()
    counts = {status: messages for status, messages, _ in rows}
    return dg.AssetCheckResult(
        passed=not rows, severity=dg.AssetCheckSeverity.WARN,
        metadata={"unparsable": counts.get("unparsable", 0), "out_of_range": counts.get("out_of_range", 0),
                  "example_message_ids": dg.MetadataValue.json({status: examples for status, _, examples in rows})},
    )


@dg.asset_check(
    asset=dg.AssetKey(["marts", "profile_events"]),
    name=MESSAGE_COPIES_CHECK,
    description="Message ids that arrived more than once with different content (who, what, when: transport "
                "times and context aside): the first received stands in marts.profile_events, the others are "
                "dropped. Counted with example message ids, among the ids with a copy landed since the check last ran.",
    pool=DUCKDB_POOL,
)
def message_copies_agree(warehouse: Warehouse) -> dg.AssetCheckResult:
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    with connect(warehouse.database) as conn:
        since = build_state.check_passed_at(conn, MESSAGE_COPIES_CHECK)
        if since is None:
            found = conn.execute(conflicting_copies_sql(_MESSAGE_RAW_TABLES))
        else:
            found = conn.execute(conflicting_copies_sql(_MESSAGE_RAW_TABLES, scoped=True), {"since": since})
        message_ids, copies, examples = found.fetchone()
        # a warning is said once, by the build that landed the copy: the next reads only what lands after it
        build_state.record_check_passed(conn, MESSAGE_COPIES_CHECK, started)
    return dg.AssetCheckResult(
        passed=message_ids == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"message_ids_with_conflicting_copies": message_ids, "copies": copies,
                  "example_message_ids": dg.MetadataValue.json(list(examples)),
                  "landed_since": str(since) if since else "all"},
    )


@dg.asset_check(
    asset=dg.AssetKey(["marts", "profile_traits"]),
    name="trait_property_values_conform",
    description="Per computed trait, the event property values it reads as a number, time or boolean that are not "
                "one ('N/A' for a revenue): the trait takes them as null and the build goes on. Counted per trait "
                "with example message ids.",
    pool=DUCKDB_POOL,
)
def trait_property_values_conform(warehouse: Warehouse) -> dg.AssetCheckResult:
    from orchestration.computed.schema import load_definitions
    from orchestration.core import settings

    definitions = load_definitions(settings.DEFINITIONS_DIR / "traits.yml", settings.DEFINITIONS_DIR / "audiences.yml")
    query = trait_values_sql(definitions.traits)
    rows = []
    if query is not None:
        with connect(warehouse.database) as conn:
            rows = conn.execute(*query).fetchall()
    return dg.AssetCheckResult(
        passed=not rows, severity=dg.AssetCheckSeverity.WARN,
        metadata={"values_not_conforming": sum(count for _, count, _ in rows),
                  "by_trait": dg.MetadataValue.json({trait: {"values": count, "example_message_ids": examples}
                                                     for trait, count, examples in rows})},
    )
