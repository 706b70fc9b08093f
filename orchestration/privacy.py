"""Privacy requests (the Attractify wiki's privacy features, and what they leave out).

A request names one identifier (any type of the identity rules) and an action:

- ``export``: one JSON document with everything the warehouse holds on the profile the identifier
  resolves to (identifiers, profile, traits, computed traits, audiences and their history, links, events);
- ``delete``: the person is erased everywhere (every table of every schema, raw tables and
  rejected records included, past export files) and a tombstone (a salted SHA-256 of each of
  their normalised identifiers, never the value) makes ingestion reject replayed or late lines
  that carry any of them, so the person is never re-created or re-linked;
- ``lock`` / ``unlock``: lines carrying the identifier are rejected at ingestion while it is locked.

Requests come as files in ``LANDING_DIR/privacy/`` or as the run configuration of the Dagster
asset; every request is recorded in ``privacy.requests`` (who, what, when, outcome, counts) with
the identifier hashed. The salt is ``PRIVACY_SALT`` or a file created once beside the DuckDB file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import yaml

ACTIONS = ("export", "delete", "lock", "unlock")
REQUEST_FILE_SUFFIXES = (".json", ".jsonl", ".yml", ".yaml", ".csv")
ERASED_REASON = "erased_identity"
LOCKED_REASON = "locked_identity"
# Schemas the erasure leaves alone: the privacy bookkeeping itself holds hashes only.
UNTOUCHED_SCHEMAS = ("privacy", "information_schema", "pg_catalog")

PRIVACY_DDL = [
    "create schema if not exists privacy",
    """
    create table if not exists privacy.requests (
        request_id varchar primary key,
        action varchar,
        identifier_type varchar,
        identifier_hash varchar,
        requested_by varchar,
        requested_at timestamp,
        source varchar not null,
        received_at timestamp not null,
        processed_at timestamp not null,
        outcome varchar not null,
        detail varchar,
        profiles_found bigint not null default 0,
        identifiers_erased bigint not null default 0,
        rows_erased bigint not null default 0,
        rows_erased_by_table json,
        files_scrubbed bigint not null default 0,
        export_path varchar
    )
    """,
    """
    create table if not exists privacy.tombstones (
        identifier_type varchar not null,
        identifier_hash varchar not null,
        request_id varchar not null,
        erased_at timestamp not null,
        primary key (identifier_type, identifier_hash)
    )
    """,
    """
    create table if not exists privacy.locks (
        identifier_type varchar not null,
        identifier_hash varchar not null,
        request_id varchar not null,
        locked_at timestamp not null,
        primary key (identifier_type, identifier_hash)
    )
    """,
    # Raw lines erased per load, so that the landing reconciliation still adds up.
    """
    create table if not exists privacy.erased_lines (
        request_id varchar not null,
        load_id varchar not null,
        accepted_lines bigint not null,
        rejected_lines bigint not null
    )
    """,
]


def create_privacy_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for statement in PRIVACY_DDL:
        conn.execute(statement)


# ---------------------------------------------------------------------------------------------
# Salt and hashes
# ---------------------------------------------------------------------------------------------


def privacy_salt(database: Path) -> str:
    """``PRIVACY_SALT``, else a random salt created once in a file beside the DuckDB file (mode 600).

    Kept outside the database so that a copy of the database alone cannot be searched for known
    e-mails; back it up with the database: without it, the tombstones match nothing."""
    if os.environ.get("PRIVACY_SALT"):
        return os.environ["PRIVACY_SALT"]
    path = database.with_name(database.name + ".privacy_salt")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # created by a concurrent process in the meantime
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def identifier_hash(salt: str, identifier_type: str, normalized_value: str) -> str:
    """Salted SHA-256 of a normalised identifier; ``hash_sql`` computes the same in SQL."""
    return hashlib.sha256(f"{salt}:{identifier_type}:{normalized_value}".encode()).hexdigest()


def hash_sql(salt_param: str, type_expr: str, value_expr: str) -> str:
    return f"sha256({salt_param} || ':' || {type_expr} || ':' || {value_expr})"


# ---------------------------------------------------------------------------------------------
# Normalisation (the dbt macros in macros/identity/normalize.sql, as SQL DuckDB runs directly)
# ---------------------------------------------------------------------------------------------


def normalize_sql(method: str, expr: str, rules: dict) -> str:
    """The normalised value of ``expr`` by an identifier type's ``normalize`` rule, like dbt's."""
    if method in ("email", "lower"):
        return f"lower(trim({expr}))"
    if method == "id":
        return f"trim({expr})"
    if method != "phone":
        raise ValueError(f"identity_rules: unknown normalize '{method}'")
    cc = str(rules["default_phone_country_code"])
    national = int(rules["national_phone_number_length"])
    bare = rf"regexp_replace(trim({expr}), '(?i)\s*(extension|ext\.?|x|#)\s*[0-9]+\s*$', '', 'g')"
    digits = f"regexp_replace({bare}, '[^0-9]', '', 'g')"
    north_american = f"when {digits} like '011%' then '+' || substr({digits}, 4)" if cc == "1" else ""
    return f"""(case
        when {digits} = '' then null
        when {bare} like '+%' then '+' || {digits}
        when {digits} like '00%' then '+' || substr({digits}, 3)
        {north_american}
        when length({digits}) = {national} then '+{cc}' || {digits}
        when {digits} like '0%' and length({digits}) = {national + 1} then '+{cc}' || substr({digits}, 2)
        when {digits} like '{cc}%' and length({digits}) = {national + len(cc)} then '+' || {digits}
    end)"""


def normalize_by_type_sql(type_expr: str, value_expr: str, rules: dict) -> str:
    branches = "".join(
        f" when '{name}' then {normalize_sql(rule.get('normalize', 'id'), value_expr, rules)}"
        for name, rule in rules["identifier_types"].items()
    )
    return f"(case {type_expr}{branches} else trim({value_expr}) end)"


def normalize_identifier(conn: duckdb.DuckDBPyConnection, rules: dict, identifier_type: str, value: str) -> str | None:
    method = rules["identifier_types"][identifier_type].get("normalize", "id")
    return conn.execute(f"select {normalize_sql(method, 'v', rules)} from (select ?::varchar as v)", [value]).fetchone()[0]


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyRequest:
    request_id: str
    action: str
    identifier_type: str
    identifier_value: str
    requested_by: str
    requested_at: str | None = None
    source: str = "run_config"

    @classmethod
    def from_mapping(cls, fields: dict, source: str) -> "PrivacyRequest":
        """Accepts ``identifier: "type:value"`` or ``identifier_type`` and ``identifier_value``."""
        fields = {str(k).strip().lower(): ("" if v is None else str(v).strip()) for k, v in fields.items()}
        identifier_type, value = fields.get("identifier_type", ""), fields.get("identifier_value", "")
        if not identifier_type and ":" in fields.get("identifier", ""):
            identifier_type, _, value = fields["identifier"].partition(":")
        action = fields.get("action", "").lower()
        request_id = fields.get("request_id") or "req-" + hashlib.sha256(
            f"{source}\0{action}\0{identifier_type}\0{value}\0{fields.get('requested_by', '')}".encode()
        ).hexdigest()[:16]
        return cls(request_id, action, identifier_type.strip().lower(), value.strip(),
                   fields.get("requested_by", ""), fields.get("requested_at") or None, source)

    def problem(self, rules: dict) -> str | None:
        """Why the request cannot be processed, or None."""
        if self.action not in ACTIONS:
            return f"unknown action '{self.action}' (use one of {', '.join(ACTIONS)})"
        if self.identifier_type not in rules["identifier_types"]:
            return f"unknown identifier type '{self.identifier_type}' (use one of {', '.join(rules['identifier_types'])})"
        if not self.identifier_value:
            return "no identifier value"
        if not self.requested_by:
            return "requested_by is required (who filed the request)"
        return None


def read_request_file(path: Path) -> list[dict]:
    """The requests of one file: JSON (an object or a list), JSON lines, YAML (a list, or
    ``requests:`` holding one) or CSV with a header row."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(loaded, dict):
        loaded = loaded.get("requests", [loaded])
    if not isinstance(loaded, list) or not all(isinstance(item, dict) for item in loaded):
        raise ValueError("expected a request object or a list of them")
    return loaded


def request_files(landing_dir: Path) -> list[Path]:
    folder = landing_dir / "privacy"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in REQUEST_FILE_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# Resolving a person
# ---------------------------------------------------------------------------------------------


def _exists(conn, schema: str, table: str) -> bool:
    return bool(conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchone()[0])


@dataclass
class Person:
    """What the warehouse holds of the profile(s) an identifier resolves to."""

    profile_ids: list[str] = field(default_factory=list)
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # (type, normalised value)
    raw_values: list[str] = field(default_factory=list)  # the values as sent
    message_ids: list[str] = field(default_factory=list)


def resolve_person(conn, identifier_type: str, value: str) -> Person:
    person = Person()
    if _exists(conn, "marts", "profile_identifiers"):
        person.profile_ids = [r[0] for r in conn.execute(
            "select distinct profile_id from marts.profile_identifiers where identifier_type = ? and identifier_value = ?",
            [identifier_type, value]).fetchall()]
    conn.execute("create or replace temp table privacy_person_ids (identifier_type varchar, identifier_value varchar)")
    conn.execute("insert into privacy_person_ids values (?, ?)", [identifier_type, value])
    if person.profile_ids:
        conn.execute(
            "insert into privacy_person_ids select identifier_type, identifier_value from marts.profile_identifiers "
            "where profile_id in (select unnest(?::varchar[]))", [person.profile_ids])
    person.identifiers = conn.execute("select distinct * from privacy_person_ids order by all").fetchall()
    if _exists(conn, "intermediate", "int_identifiers"):
        rows = conn.execute(
            "select distinct message_id, raw_value from intermediate.int_identifiers "
            "join privacy_person_ids using (identifier_type, identifier_value)").fetchall()
        person.message_ids = sorted({r[0] for r in rows})
        person.raw_values = sorted({r[1] for r in rows if r[1] is not None})
    if person.profile_ids and _exists(conn, "marts", "profile_events"):
        person.message_ids = sorted(set(person.message_ids) | {r[0] for r in conn.execute(
            "select message_id from marts.profile_events where profile_id in (select unnest(?::varchar[]))",
            [person.profile_ids]).fetchall()})
    conn.execute("drop table privacy_person_ids")
    return person


def is_junk(conn, identifier_type: str, value: str) -> bool:
    """A junk identifier (a shared device, a placeholder e-mail) is in many people's data: a request
    naming it must not erase or export them all."""
    return _exists(conn, "marts", "junk_identifiers") and bool(conn.execute(
        "select count(*) from marts.junk_identifiers where identifier_type = ? and identifier_value = ?",
        [identifier_type, value]).fetchone()[0])


# ---------------------------------------------------------------------------------------------
# Erasure
# ---------------------------------------------------------------------------------------------

# Characters that continue an identifier: a value matches only where none of them is next to it,
# so erasing bo@example.com leaves jimbo@example.com alone.
_WORD = "a-z0-9@._+-"
MIN_TEXT_MATCH_LENGTH = 4  # shorter values are matched by whole columns only


def text_match_pattern(values: list[str], ids: list[str] = ()) -> str | None:
    """A regular expression (on lower-cased text) finding any of ``values`` (of some length) or
    ``ids`` (profile ids, whatever their length) as a whole token."""
    tokens = {v.strip().lower() for v in values if v and len(v.strip()) >= MIN_TEXT_MATCH_LENGTH}
    tokens = sorted(tokens | {i.lower() for i in ids if i}, key=len, reverse=True)
    if not tokens:
        return None
    return f"(^|[^{_WORD}])(" + "|".join(re.escape(t) for t in tokens) + f")($|[^{_WORD}])"


@dataclass
class Erasure:
    rows_by_table: Counter = field(default_factory=Counter)
    files_scrubbed: int = 0

    @property
    def rows(self) -> int:
        return sum(self.rows_by_table.values())


def _text_columns(conn) -> dict[tuple[str, str], list[tuple[str, str]]]:
    columns: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in conn.execute(
        """
        select c.table_schema, c.table_name, c.column_name, c.data_type
        from information_schema.columns as c
        join information_schema.tables as t using (table_catalog, table_schema, table_name)
        where t.table_type = 'BASE TABLE' and c.table_catalog = current_database()
        order by c.table_schema, c.table_name, c.ordinal_position
        """
    ).fetchall():
        if schema in UNTOUCHED_SCHEMAS:
            continue
        columns.setdefault((schema, table), []).append((column, data_type))
    return columns


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def person_row_predicate(columns: list[tuple[str, str]], has_pattern: bool) -> str | None:
    """SQL true for a row that holds the person: a profile id or message id of theirs in a
    ``*profile_id`` / ``*message_id`` column, or one of their values in any text or JSON column.
    Parameters, in order: profile ids, message ids, exact values, pattern."""
    conditions = []
    for column, data_type in columns:
        if data_type not in ("VARCHAR", "JSON"):
            continue
        name = column.lower()
        text = f"{_quote(column)}::varchar"
        if name.endswith("profile_id"):
            conditions.append(f"{text} in (select unnest($profiles::varchar[]))")
        elif name.endswith("message_id"):
            conditions.append(f"{text} in (select unnest($messages::varchar[]))")
        conditions.append(f"lower(trim({text})) in (select unnest($values::varchar[]))")
        if has_pattern:
            conditions.append(f"regexp_matches(lower({text}), $pattern)")
    return " or ".join(conditions) if conditions else None


def erase_person(conn, person: Person, request_id: str) -> Erasure:
    """Deletes every row of every table (outside ``privacy``) that holds the person. Raw lines
    erased are counted per load in ``privacy.erased_lines`` for the landing reconciliation."""
    values = sorted({v.lower() for _, v in person.identifiers} | {v.strip().lower() for v in person.raw_values} - {""})
    pattern = text_match_pattern(values)
    params = {"profiles": person.profile_ids, "messages": person.message_ids, "values": values}
    if pattern:
        params["pattern"] = pattern
    erasure = Erasure()
    for (schema, table), columns in _text_columns(conn).items():
        predicate = person_row_predicate(columns, pattern is not None)
        if predicate is None:
            continue
        target = f"{_quote(schema)}.{_quote(table)}"
        used = {k: v for k, v in params.items() if f"${k}" in predicate}
        if schema == "raw" and any(c == "load_id" for c, _ in columns) and table != "loaded_files":
            kind = "rejected_lines" if table == "rejected_records" else "accepted_lines"
            other = "accepted_lines" if kind == "rejected_lines" else "rejected_lines"
            conn.execute(
                f"insert into privacy.erased_lines (request_id, load_id, {kind}, {other}) "
                f"select {_sql_literal(request_id)}, load_id, count(*), 0 from {target} where {predicate} group by load_id",
                used)
        deleted = conn.execute(f"delete from {target} where {predicate}", used).fetchone()[0]
        if deleted:
            erasure.rows_by_table[f"{schema}.{table}"] = deleted
    return erasure


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scrub_export_files(conn, export_dir: Path, person: Person) -> int:
    """Past exports (audience member lists and change files, earlier privacy exports) lose the person's rows."""
    if not export_dir.is_dir():
        return 0
    pattern = text_match_pattern([v for _, v in person.identifiers], person.profile_ids)
    if pattern is None:
        return 0
    compiled = re.compile(pattern)
    scrubbed = 0
    for path in sorted(export_dir.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".csv":
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = lines[:1] + [line for line in lines[1:] if not compiled.search(line.lower())]
            if len(kept) != len(lines):
                path.write_text("".join(kept), encoding="utf-8")
                scrubbed += 1
        elif path.suffix == ".json" and path.parent.name == "privacy":
            if compiled.search(path.read_text(encoding="utf-8").lower()):
                path.unlink()
                scrubbed += 1
        elif path.suffix == ".parquet":
            source = _sql_literal(str(path))
            matches = conn.execute(
                f"select count(*) from read_parquet({source}) as t where regexp_matches(lower(t::varchar), ?)", [pattern]
            ).fetchone()[0]
            if matches:
                rewritten = path.with_name(path.name + ".scrubbed")
                conn.execute(
                    f"copy (select * from read_parquet({source}) as t where not regexp_matches(lower(t::varchar), ?)) "
                    f"to {_sql_literal(str(rewritten))} (format parquet)", [pattern])
                rewritten.replace(path)
                scrubbed += 1
    return scrubbed


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------

EXPORT_SECTIONS = {
    "profile": "select * from marts.profiles where profile_id = $profile_id",
    "identifiers": "select * exclude (profile_id) from marts.profile_identifiers where profile_id = $profile_id "
                   "order by identifier_type, identifier_value",
    "computed_traits": "select * exclude (profile_id) from marts.profile_traits where profile_id = $profile_id",
    "audiences": "select audience from marts.audience_members where profile_id = $profile_id order by audience",
    "audience_history": "select audience, change, changed_at from marts.audience_membership_history "
                        "where profile_id = $profile_id order by changed_at, audience",
    "merges": "select * from marts.profile_merges where surviving_profile_id = $profile_id order by merged_at",
    "identity_links": "select * exclude (from_profile_id, to_profile_id) from marts.identity_links "
                      "where from_profile_id = $profile_id or to_profile_id = $profile_id order by event_at, message_id",
    "events": "select * exclude (profile_id) from marts.profile_events where profile_id = $profile_id "
              "order by event_at, message_id",
}
SINGLE_ROW_SECTIONS = ("profile", "computed_traits")


def _jsonable(value, type_name: str):
    if value is None:
        return None
    if type_name == "JSON":
        return json.loads(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _rows(conn, sql: str, params: dict) -> list[dict]:
    cursor = conn.execute(sql, params)
    names = [(d[0], str(d[1])) for d in cursor.description]
    return [{name: _jsonable(value, type_name) for (name, type_name), value in zip(names, row)} for row in cursor.fetchall()]


def export_document(conn, profile_id: str, request: PrivacyRequest, generated_at: datetime) -> dict:
    document: dict = {"request_id": request.request_id, "generated_at": generated_at.isoformat(),
                      "profile_id": profile_id}
    for section, sql in EXPORT_SECTIONS.items():
        schema, table = re.search(r"from (\w+)\.(\w+)", sql).groups()
        rows = _rows(conn, sql, {"profile_id": profile_id}) if _exists(conn, schema, table) else []
        document[section] = (rows[0] if rows else None) if section in SINGLE_ROW_SECTIONS else rows
    if document["profile"]:
        document["traits"] = document["profile"].pop("traits", None)
    return document


# ---------------------------------------------------------------------------------------------
# Processing
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    outcome: str
    detail: str | None = None
    profiles_found: int = 0
    identifiers_erased: int = 0
    erasure: Erasure = field(default_factory=Erasure)
    export_path: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def process_request(conn, request: PrivacyRequest, *, rules: dict, salt: str, export_dir: Path,
                    received_at: datetime) -> Outcome:
    """Processes one request in one transaction and records it in ``privacy.requests``."""
    problem = request.problem(rules)
    normalized = None if problem else normalize_identifier(conn, rules, request.identifier_type, request.identifier_value)
    if not problem and not normalized:
        problem = f"'{request.identifier_type}' value cannot be normalised"
    hashed = identifier_hash(salt, request.identifier_type, normalized) if normalized else None
    conn.execute("begin transaction")
    try:
        if problem:
            outcome = Outcome("invalid", problem)
        elif request.action in ("export", "delete") and is_junk(conn, request.identifier_type, normalized):
            outcome = Outcome("refused", "a junk identifier (see marts.junk_identifiers) is not one person's")
        elif request.action == "export":
            outcome = _export(conn, request, normalized, export_dir)
        elif request.action == "delete":
            outcome = _delete(conn, request, normalized, salt, export_dir)
        elif request.action == "lock":
            conn.execute("insert or ignore into privacy.locks values (?, ?, ?, ?)",
                         [request.identifier_type, hashed, request.request_id, _now()])
            outcome = Outcome("completed", "locked: lines carrying it are rejected at ingestion")
        else:
            removed = conn.execute("delete from privacy.locks where identifier_type = ? and identifier_hash = ?",
                                   [request.identifier_type, hashed]).fetchone()[0]
            outcome = Outcome("completed" if removed else "not_found", None if removed else "it was not locked")
        conn.execute(
            "insert into privacy.requests values (?, ?, ?, ?, ?, try_cast(? as timestamp), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [request.request_id, request.action or None, request.identifier_type or None, hashed,
             request.requested_by or None, request.requested_at, request.source, received_at, _now(),
             outcome.outcome, outcome.detail, outcome.profiles_found, outcome.identifiers_erased,
             outcome.erasure.rows, json.dumps(dict(sorted(outcome.erasure.rows_by_table.items()))),
             outcome.erasure.files_scrubbed, outcome.export_path],
        )
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return outcome


def _export(conn, request: PrivacyRequest, normalized: str, export_dir: Path) -> Outcome:
    person = resolve_person(conn, request.identifier_type, normalized)
    if not person.profile_ids:
        return Outcome("not_found", "no profile holds this identifier")
    generated_at = _now()
    documents = [export_document(conn, profile_id, request, generated_at) for profile_id in person.profile_ids]
    path = export_dir / "privacy" / f"{request.request_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = documents[0] if len(documents) == 1 else documents
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(body, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(path)
    return Outcome("completed", f"{sum(len(d['events']) for d in documents)} events",
                   profiles_found=len(person.profile_ids), export_path=str(path))


def _delete(conn, request: PrivacyRequest, normalized: str, salt: str, export_dir: Path) -> Outcome:
    person = resolve_person(conn, request.identifier_type, normalized)
    erasure = erase_person(conn, person, request.request_id)
    for identifier_type, value in person.identifiers:
        conn.execute("insert or ignore into privacy.tombstones values (?, ?, ?, ?)",
                     [identifier_type, identifier_hash(salt, identifier_type, value), request.request_id, _now()])
    erasure.files_scrubbed = scrub_export_files(conn, export_dir, person)
    detail = None if person.profile_ids else "no profile holds this identifier: tombstoned for future data"
    return Outcome("completed", detail, profiles_found=len(person.profile_ids),
                   identifiers_erased=len(person.identifiers), erasure=erasure)


@dataclass
class Batch:
    outcomes: Counter = field(default_factory=Counter)  # (action, outcome) → requests
    files_done: list[str] = field(default_factory=list)
    skipped: int = 0


def process_requests(conn, landing_dir: Path, extra: list[dict], *, rules: dict, salt: str,
                     export_dir: Path) -> Batch:
    """Every pending request: from the run configuration first, then the files in
    ``LANDING_DIR/privacy/`` in name order. A request id already in the log is skipped (a request is
    processed once); a file whose requests are all recorded is removed, since it names the person."""
    create_privacy_tables(conn)
    done = {r[0] for r in conn.execute("select request_id from privacy.requests").fetchall()}
    batch = Batch()
    sources: list[tuple[Path | None, list[PrivacyRequest]]] = [
        (None, [PrivacyRequest.from_mapping(item, "run_config") for item in extra])]
    for path in request_files(landing_dir):
        try:
            items = read_request_file(path)
        except (ValueError, yaml.YAMLError, UnicodeDecodeError) as error:
            # Left in place (it may be fixed and filed again under another name), recorded once.
            if _record_unreadable(conn, path, str(error)):
                batch.outcomes[("unknown", "invalid")] += 1
            continue
        sources.append((path, [PrivacyRequest.from_mapping(item, f"privacy/{path.name}") for item in items]))
    received_at = _now()
    for path, requests in sources:
        for request in requests:
            if request.request_id in done:
                batch.skipped += 1
                continue
            outcome = process_request(conn, request, rules=rules, salt=salt, export_dir=export_dir,
                                      received_at=received_at)
            done.add(request.request_id)
            batch.outcomes[(request.action or "unknown", outcome.outcome)] += 1
        if path is not None:
            path.unlink()
            batch.files_done.append(path.name)
    if any(action == "delete" for action, _ in batch.outcomes):
        conn.execute("checkpoint")  # write the erasure into the database file now
    return batch


def _record_unreadable(conn, path: Path, error: str) -> bool:
    request_id = f"file-{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    if conn.execute("select count(*) from privacy.requests where request_id = ?", [request_id]).fetchone()[0]:
        return False
    conn.execute(
        "insert into privacy.requests (request_id, source, received_at, processed_at, outcome, detail) "
        "values (?, ?, ?, ?, 'invalid', ?)",
        [request_id, f"privacy/{path.name}", _now(), _now(), f"unreadable request file: {(error.splitlines() or [''])[0]}"])
    return True


# ---------------------------------------------------------------------------------------------
# The screen at the landing door
# ---------------------------------------------------------------------------------------------


def _message_fields(rules: dict) -> list[tuple[str, str]]:
    """(identifier type, JSON path) of every place a message can carry an identifier."""
    fields = [(t, "$.previousId") for t in ("user_id", "anonymous_id") if t in rules["identifier_types"]]
    for name, rule in rules["identifier_types"].items():
        for source in rule.get("sources", []):
            kind, _, path = source.partition(".")
            if source in ("userId", "anonymousId"):
                fields.append((name, f"$.{source}"))
            elif kind == "traits":
                fields += [(name, f"$.traits.{path}"), (name, f"$.context.traits.{path}")]
            elif kind == "context":
                fields.append((name, f"$.context.{path}"))
    return list(dict.fromkeys(fields))


def _contact_fields(rules: dict) -> list[tuple[str, str]]:
    """(identifier type, SQL on ``landing_contacts``) of every contact-list column an identity rule reads."""
    from orchestration.ingestion import snake_case

    fields = []
    for name, rule in rules["identifier_types"].items():
        for source in rule.get("sources", []):
            kind, _, column = source.partition(".")
            if kind != "column":
                continue
            column = snake_case(column)
            expr = column if column in ("email", "phone") else f"json_extract_string(traits, {_sql_literal('$.' + column)})"
            fields.append((name, expr))
    return fields


@dataclass
class PrivacyScreen:
    """Rejects, at ingestion, the lines that carry an erased (``erased_identity``) or a locked
    (``locked_identity``) identifier. Rejected lines keep their file and line number, never their
    text: the text is what was erased. Rejected-for-other-reasons lines whose text holds an erased
    identifier keep their reason but lose their text too."""

    salt: str
    rules: dict

    @classmethod
    def load(cls, conn, salt: str, rules: dict) -> "PrivacyScreen | None":
        """The screen, or None when nothing is erased or locked (the usual case: no cost)."""
        create_privacy_tables(conn)
        conn.execute(
            f"""
            create or replace temp table privacy_screen as
            select identifier_type, identifier_hash, '{ERASED_REASON}' as reason from privacy.tombstones
            union all
            select identifier_type, identifier_hash, '{LOCKED_REASON}' from privacy.locks
            """
        )
        if not conn.execute("select count(*) from privacy_screen").fetchone()[0]:
            conn.execute("drop table privacy_screen")
            return None
        return cls(salt, rules)

    def _hits_sql(self, identifiers_sql: str) -> str:
        """Per line, the strongest reason among its identifiers (erased before locked)."""
        normalized = normalize_by_type_sql("identifiers.identifier_type", "identifiers.raw_value", self.rules)
        return f"""
        select line_number, min(screen.reason) as reason
        from ({identifiers_sql}) as identifiers
        join privacy_screen as screen
          on screen.identifier_type = identifiers.identifier_type
         and screen.identifier_hash = {hash_sql('$salt', 'identifiers.identifier_type', normalized)}
        where raw_value is not null
        group by line_number
        """

    def screen(self, conn, kind: str, context: dict) -> Counter:
        """Applies the screen to the staged file (``landing_lines`` or ``landing_contacts``); returns
        the rejections it wrote itself (contact rows; event lines are counted by the writer)."""
        if kind == "events":
            return self._screen_events(conn)
        if conn.execute("select count(*) from duckdb_tables() where temporary and table_name = 'landing_contacts'").fetchone()[0]:
            return self._screen_contacts(conn, context)
        return Counter()

    def _screen_events(self, conn) -> Counter:
        fields = _message_fields(self.rules)
        structs = ", ".join(
            f"{{identifier_type: {_sql_literal(t)}, raw_value: json_extract_string(line, {_sql_literal(p)})}}"
            for t, p in fields)
        accepted = f"""
            select line_number, unnest([{structs}], recursive := true)
            from landing_lines where reason is null and not is_blank
        """
        conn.execute(
            f"""
            update landing_lines set reason = hits.reason, line = null
            from ({self._hits_sql(accepted)}) as hits
            where landing_lines.line_number = hits.line_number
            """, {"salt": self.salt})
        # Lines rejected for another reason (malformed JSON, ...): any quoted token may be an identifier.
        types = ", ".join(_sql_literal(t) for t in self.rules["identifier_types"])
        tokens = f"""
            select line_number, unnest([{types}]) as identifier_type, raw_value
            from (select line_number, unnest(regexp_extract_all(line, '"([^"\\\\]{{1,320}})"', 1)) as raw_value
                  from landing_lines where reason is not null and line is not null)
        """
        conn.execute(
            f"""
            update landing_lines set line = null
            from ({self._hits_sql(tokens)}) as hits
            where landing_lines.line_number = hits.line_number and hits.reason = '{ERASED_REASON}'
            """, {"salt": self.salt})
        return Counter()

    def _screen_contacts(self, conn, context: dict) -> Counter:
        fields = _contact_fields(self.rules)
        if not fields:
            return Counter()
        identifiers = " union all ".join(
            f"select line_number, {_sql_literal(t)} as identifier_type, {expr}::varchar as raw_value from landing_contacts"
            for t, expr in fields)
        conn.execute(f"create or replace temp table privacy_contact_hits as {self._hits_sql(identifiers)}",
                     {"salt": self.salt})
        conn.execute(
            """
            insert into raw.rejected_records
            select $load_id, $file_path, line_number, null, reason,
                   case reason when 'erased_identity' then 'an identifier of this row was erased by a privacy request'
                               else 'an identifier of this row is locked by a privacy request' end, $loaded_at
            from privacy_contact_hits order by line_number
            """,
            {"load_id": context["load_id"], "file_path": context["file_path"], "loaded_at": context["loaded_at"]})
        rejected = Counter(dict(conn.execute("select reason, count(*) from privacy_contact_hits group by 1").fetchall()))
        conn.execute("delete from landing_contacts where line_number in (select line_number from privacy_contact_hits)")
        conn.execute("drop table privacy_contact_hits")
        return rejected
