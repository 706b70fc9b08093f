"""Erasure by lineage: a person's rows are found through keys, never by searching values.

From the identifier each delete request names (already normalised), set-based over every request
of a batch:

1. profiles: the profile holding it, and every profile merged into one of them
   (``marts.profile_merges``, ``int_profile_ids.previous_profile_id``);
2. identifiers: every identifier of those profiles except junk ones: a shared device or a store's
   placeholder e-mail is in other people's data, so it is neither erased nor tombstoned;
3. messages: every message carrying one of those identifiers (``int_identifiers``; a contact row
   is a message too) and every message attributed to one of the profiles (``profile_events``);
4. lines: the landed lines of those messages, every copy (``load_id``, ``line_number``).

Every table outside ``privacy`` then loses the rows whose key columns name one of these. The key
columns are found by name, the convention every model holding personal data follows (docs/privacy.md,
"Erasure by lineage"): a profile column (``KEY_COLUMNS["profile"]``), a message column, an identifier pair,
or a landed line. Columns that sample a neighbour's identifier (junk detection's first and last
neighbour) are blanked, not deleted. A rejected line was never parsed, so it has no keys: it goes
when one of its quoted tokens is, normalised, one of the person's identifiers (the ingestion
screen's rule for rejected lines).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

from orchestration.core.warehouse import quote_identifier as _q
from orchestration.core.warehouse import quote_literal, table_exists

# Schemas the erasure leaves alone: the privacy bookkeeping holds hashes only.
UNTOUCHED_SCHEMAS = ("privacy", "information_schema", "pg_catalog")

KEY_COLUMNS = {
    "profile": ("profile_id", "from_profile_id", "to_profile_id", "surviving_profile_id", "merged_profile_id",
                "derived_profile_id"),
    "message": ("message_id", "caused_by_message_id", "record_id"),
}
IDENTIFIER_PAIRS = (("identifier_type", "identifier_value"), ("from_type", "from_value"), ("to_type", "to_value"))
LINE_KEY = ("load_id", "line_number")
# (type column, value column) pairs that only sample an identifier: blanked where it is the person's.
SAMPLED_IDENTIFIERS = (("neighbour_type", "first_neighbour"), ("neighbour_type", "last_neighbour"))
# A quoted string of a rejected line (the screen reads the same tokens).
QUOTED_TOKEN_PATTERN = r'"([^"\\]{1,320})"'


# What holds the rows: tables (the DuckDB warehouse), or, in the Spark target's control database,
# the views of Spark's tables (orchestration/spark/tables.py).
ON_DUCKDB, ON_SPARK = "BASE TABLE", "VIEW"


def _columns(conn, table_type: str = ON_DUCKDB) -> dict[tuple[str, str], set[str]]:
    tables: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in conn.execute(
        """
        select c.table_schema, c.table_name, lower(c.column_name)
        from information_schema.columns as c
        join information_schema.tables as t using (table_catalog, table_schema, table_name)
        where t.table_type = ? and c.table_catalog = current_database()
        order by all
        """, [table_type]
    ).fetchall():
        if schema not in UNTOUCHED_SCHEMAS:
            tables.setdefault((schema, table), set()).add(column)
    return tables


def resolve_people(conn, junk_sql: str, table_type: str = ON_DUCKDB) -> None:
    """Fills the temp tables ``erase_profiles``, ``erase_identifiers``, ``erase_messages`` and
    ``erase_lines`` (each with ``request_id``) from ``erase_requests`` (request_id,
    identifier_type, identifier_value). ``junk_sql`` selects the junk (type, value) pairs;
    ``table_type`` says what holds the rows (``ON_DUCKDB``, ``ON_SPARK``)."""
    conn.execute("create or replace temp table erase_profiles (request_id varchar, profile_id varchar)")
    conn.execute("create or replace temp table erase_identifiers "
                 "(request_id varchar, identifier_type varchar, identifier_value varchar)")
    conn.execute("create or replace temp table erase_messages (request_id varchar, message_id varchar)")
    conn.execute("create or replace temp table erase_lines (request_id varchar, load_id varchar, line_number bigint)")
    if not table_exists(conn, "marts", "profile_identifiers"):
        return
    conn.execute("""
        insert into erase_profiles
        select distinct r.request_id, p.profile_id
        from erase_requests as r
        join marts.profile_identifiers as p using (identifier_type, identifier_value)
    """)
    merged_into = []
    if table_exists(conn, "marts", "profile_merges"):
        merged_into.append("select surviving_profile_id as profile_id, merged_profile_id as merged "
                           "from marts.profile_merges")
    if table_exists(conn, "intermediate", "int_profile_ids"):
        merged_into.append("select profile_id, previous_profile_id from intermediate.int_profile_ids "
                           "where previous_profile_id is not null")
    if merged_into:
        # The profiles merged into the person's, and those merged into them (a short chain).
        while conn.execute(f"""
            insert into erase_profiles
            select distinct e.request_id, m.merged
            from erase_profiles as e
            join ({' union '.join(merged_into)}) as m using (profile_id)
            where not exists (select 1 from erase_profiles as x where x.request_id = e.request_id and x.profile_id = m.merged)
        """).fetchone()[0]:
            pass
    conn.execute(f"""
        insert into erase_identifiers
        select distinct e.request_id, p.identifier_type, p.identifier_value
        from erase_profiles as e
        join marts.profile_identifiers as p using (profile_id)
        where not exists (select 1 from ({junk_sql}) as junk(identifier_type, identifier_value)
                          where junk.identifier_type = p.identifier_type and junk.identifier_value = p.identifier_value)
    """)
    if table_exists(conn, "intermediate", "int_identifiers"):
        conn.execute("""
            insert into erase_messages
            select distinct e.request_id, i.message_id
            from erase_identifiers as e
            join intermediate.int_identifiers as i using (identifier_type, identifier_value)
        """)
    if table_exists(conn, "marts", "profile_events"):
        conn.execute("""
            insert into erase_messages
            select distinct e.request_id, p.message_id
            from erase_profiles as e
            join marts.profile_events as p using (profile_id)
            where not exists (select 1 from erase_messages as x
                              where x.request_id = e.request_id and x.message_id = p.message_id)
        """)
    # Every landed copy of the messages, in every table that keeps a message's line.
    for (schema, table), columns in _columns(conn, table_type).items():
        message_columns = [c for c in KEY_COLUMNS["message"] if c in columns]
        if message_columns and set(LINE_KEY) <= columns:
            for column in message_columns:
                conn.execute(f"""
                    insert into erase_lines
                    select distinct m.request_id, t.load_id, t.line_number
                    from {_q(schema)}.{_q(table)} as t
                    join erase_messages as m on m.message_id = t.{_q(column)}
                """)
    conn.execute("create or replace temp table erase_lines as select distinct * from erase_lines")


def _matches_sql(schema: str, table: str, columns: set[str], identifier_types: list[str], normalize,
                 row_key: tuple[str, ...] = ("rowid",)) -> list[str]:
    """SELECTs of (request_id, the row's key) for the rows of a table that are a person's, one per
    key: ``rid``, its rowid, or the columns of ``row_key`` (a raw table's ``LINE_KEY``)."""
    target = f"{_q(schema)}.{_q(table)}"
    row_keys = ["rid"] if row_key == ("rowid",) else [_q(column) for column in row_key]
    own_key = "rowid as rid" if row_key == ("rowid",) else ", ".join(row_keys)  # read from the table itself
    key_of_t = "t.rowid as rid" if row_key == ("rowid",) else ", ".join(f"t.{name}" for name in row_keys)
    selects = []
    for kind, names in KEY_COLUMNS.items():
        keys = "erase_profiles" if kind == "profile" else "erase_messages"
        key = "profile_id" if kind == "profile" else "message_id"
        for column in names:
            if column in columns:
                selects.append(f"select k.request_id, {key_of_t} from {target} as t "
                               f"join {keys} as k on k.{key} = t.{_q(column)}")
    for type_column, value_column in IDENTIFIER_PAIRS:
        if type_column in columns and value_column in columns:
            selects.append(f"select k.request_id, {key_of_t} from {target} as t join erase_identifiers as k "
                           f"on k.identifier_type = t.{_q(type_column)} and k.identifier_value = t.{_q(value_column)}")
    if set(LINE_KEY) <= columns:
        selects.append(f"select k.request_id, {key_of_t} from {target} as t join erase_lines as k "
                       f"on k.load_id = t.load_id and k.line_number = t.line_number")
    if (schema, table) == ("raw", "rejected_records"):
        types = ", ".join(map(quote_literal, identifier_types))
        selects.append(f"""
            select k.request_id, {', '.join(f'tokens.{name}' for name in row_keys)}
            from (
                select {', '.join(row_keys)}, identifier_type, {normalize('identifier_type', 'token')} as identifier_value
                from (select {own_key}, unnest(regexp_extract_all(raw_text, '{QUOTED_TOKEN_PATTERN}', 1)) as token
                      from {target} where raw_text is not null)
                cross join (select unnest([{types}]) as identifier_type)
            ) as tokens
            join erase_identifiers as k using (identifier_type, identifier_value)""")
    return selects


def erase_rows(conn, identifier_types: list[str], normalize) -> dict[str, Counter]:
    """Deletes the rows the ``erase_*`` tables name, in every table outside ``privacy``; returns the
    rows erased per request and table. Raw lines erased are counted per load in
    ``privacy.erased_lines`` (each line once, for the first request naming it), so that the landing
    reconciliation still adds up."""
    by_request: dict[str, Counter] = defaultdict(Counter)
    for (schema, table), columns in _columns(conn).items():
        target = f"{_q(schema)}.{_q(table)}"
        for type_column, value_column in SAMPLED_IDENTIFIERS:
            if type_column in columns and value_column in columns:
                conn.execute(f"""
                    update {target} as t set {_q(value_column)} = null
                    from (select distinct identifier_type, identifier_value from erase_identifiers) as k
                    where k.identifier_type = t.{_q(type_column)} and k.identifier_value = t.{_q(value_column)}
                """)
        selects = _matches_sql(schema, table, columns, identifier_types, normalize)
        if not selects:
            continue
        conn.execute(f"create or replace temp table erase_matches as select distinct * from ({' union all '.join(selects)})")
        counts = conn.execute("select request_id, count(*) from erase_matches group by 1").fetchall()
        if not counts:
            continue
        for request_id, rows in counts:
            by_request[request_id][f"{schema}.{table}"] = rows
        if schema == "raw" and set(LINE_KEY) <= columns:
            _count_erased_lines(conn, table, f"""
                select m.request_id, t.load_id
                from (select rid, min(request_id) as request_id from erase_matches group by rid) as m
                join {target} as t on t.rowid = m.rid""")
        conn.execute(f"delete from {target} where rowid in (select rid from erase_matches)")
    conn.execute("drop table if exists erase_matches")
    return by_request


def _count_erased_lines(conn, table: str, lines_sql: str) -> None:
    """``privacy.erased_lines``: the raw lines of ``table`` erased, per request and load, from
    ``lines_sql`` (request_id, load_id), a row per line."""
    kind = "rejected_lines" if table == "rejected_records" else "accepted_lines"
    other = "accepted_lines" if kind == "rejected_lines" else "rejected_lines"
    conn.execute(f"insert into privacy.erased_lines (request_id, load_id, {kind}, {other}) "
                 f"select request_id, load_id, count(*), 0 from ({lines_sql}) group by all")


def erased_raw_lines(conn, identifier_types: list[str], normalize) -> tuple[dict[str, Counter], dict[str, list]]:
    """The Spark target's erasure, in the control database, whose raw tables are views of Spark's:
    the landed lines of every raw table that are the people's, found by the keys ``erase_rows``
    deletes by, counted per request and table and in ``privacy.erased_lines``. Returns the counts,
    and the line keys ``[load_id, line_number]`` per raw table, for Spark to remove (every model is
    then built again from the raw tables)."""
    by_request: dict[str, Counter] = defaultdict(Counter)
    lines: dict[str, list] = {}
    for (schema, table), columns in _columns(conn, ON_SPARK).items():
        if schema != "raw" or not set(LINE_KEY) <= columns:
            continue
        selects = _matches_sql(schema, table, columns, identifier_types, normalize, row_key=LINE_KEY)
        conn.execute(f"create or replace temp table erase_matches as select distinct * from ({' union all '.join(selects)})")
        for request_id, rows in conn.execute("select request_id, count(*) from erase_matches group by 1").fetchall():
            by_request[request_id][f"{schema}.{table}"] = rows
        _count_erased_lines(conn, table, "select min(request_id) as request_id, load_id from erase_matches "
                                         "group by load_id, line_number")
        found = conn.execute("select distinct load_id, line_number from erase_matches order by all").fetchall()
        if found:
            lines[table] = [list(key) for key in found]
    conn.execute("drop table if exists erase_matches")
    return by_request, lines


def add_pending_lines(path: Path, lines: dict[str, list]) -> None:
    """Adds line keys to the erasure Spark has still to do (``path``, JSON: raw table → keys; keys
    only, nothing that names a person), written whole or not at all."""
    if not any(lines.values()):  # nobody found: nothing for Spark to remove or rebuild
        return
    pending = json.loads(path.read_text()) if path.exists() else {}
    for table, keys in lines.items():
        pending[table] = sorted({tuple(key) for key in pending.get(table, [])} | {tuple(key) for key in keys})
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_text(json.dumps(pending))
    os.replace(staged, path)


def erased_profiles(conn) -> dict[str, list[str]]:
    profiles: dict[str, list[str]] = defaultdict(list)
    for request_id, profile_id in conn.execute("select request_id, profile_id from erase_profiles order by all").fetchall():
        profiles[request_id].append(profile_id)
    return profiles


def erased_identifiers(conn) -> dict[str, list[tuple[str, str]]]:
    identifiers: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for request_id, kind, value in conn.execute("select * from erase_identifiers order by all").fetchall():
        identifiers[request_id].append((kind, value))
    return identifiers


def drop_temp_tables(conn) -> None:
    for name in ("erase_requests", "erase_profiles", "erase_identifiers", "erase_messages", "erase_lines"):
        conn.execute(f"drop table if exists {name}")


def rows_by_table_json(rows: Counter) -> str:
    return json.dumps(dict(sorted(rows.items())))
