"""Privacy requests (the Attractify wiki's privacy features, and what they leave out).

A request names one identifier (any type of the identity rules) and an action:

- ``export``: one JSON document with everything the warehouse holds on the profile the identifier
  resolves to (identifiers, profile, traits, computed traits, audiences and their history, links, events);
- ``delete``: the person is erased everywhere, found by lineage (profile, identifiers, messages,
  landed lines; ``erasure.py``), never by searching values: every table of every schema, raw tables
  and rejected records included, past export files and lookup pictures. A tombstone (a salted
  SHA-256 of each of their normalised identifiers, never the value) makes ingestion reject replayed
  or late lines that carry any of them (``privacy_screen.py``), so the person is never re-created;
- ``lock`` / ``unlock``: lines carrying the identifier are rejected at ingestion while it is locked.

Requests come as files in ``LANDING_DIR/privacy/`` or as the run configuration of the Dagster
asset, and are untrusted: each one, valid or not, is recorded in ``privacy.requests`` (who, what,
when, outcome, counts) with the identifier hashed; a malformed one is recorded ``invalid`` with its
reason while the others run, and its file is then kept aside in ``privacy/invalid/`` under the
hash of its content. A batch is processed set-based, in one transaction. The salt is
``PRIVACY_SALT`` or a file created once beside the DuckDB file.
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

from orchestration.core.warehouse import quote_literal, table_exists
from orchestration.identity.rules import IdentityRules
from orchestration.privacy import erasure

ACTIONS = ("export", "delete", "lock", "unlock")
REQUEST_FILE_SUFFIXES = (".json", ".jsonl", ".yml", ".yaml", ".csv")
ERASED_REASON = "erased_identity"
LOCKED_REASON = "locked_identity"
# A request id names the export file: a safe file name, nothing else.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_FIELD_CHARS = 1024  # longer than any identifier (an e-mail is at most 320): a request is not a payload
MAX_REQUEST_FILE_BYTES = 64 << 20
INVALID_FOLDER = "invalid"  # LANDING_DIR/privacy/invalid/: files with invalid requests, kept aside

PRIVACY_DDL = [
    "create schema if not exists privacy",
    # One row per request received, valid or not; a request id reused for a different request is
    # recorded again, refused (so it is no primary key).
    """
    create table if not exists privacy.requests (
        request_id varchar not null,
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
        export_path varchar,
        fingerprint varchar
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
    # (an older warehouse's tables are upgraded before a run reaches here: core/migrations.py)


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
    if not cc.isdigit():
        raise ValueError(f"identity_rules: default_phone_country_code must be digits, got {cc!r}")
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


def normalize_by_type_sql(type_expr: str, value_expr: str, rules: "dict | IdentityRules") -> str:
    rules = IdentityRules.parse(rules)
    branches = "".join(
        f" when {quote_literal(name)} then {normalize_sql(rule.normalize, value_expr, rules.raw)}"
        for name, rule in rules.types.items()
    )
    return f"(case {type_expr}{branches} else trim({value_expr}) end)"


def normalize_identifier(conn: duckdb.DuckDBPyConnection, rules: "dict | IdentityRules", identifier_type: str,
                         value: str) -> str | None:
    rules = IdentityRules.parse(rules)
    sql = normalize_sql(rules.normalize(identifier_type), "v", rules.raw)
    return conn.execute(f"select {sql} from (select ?::varchar as v)", [value]).fetchone()[0]


# ---------------------------------------------------------------------------------------------
# Requests: untrusted input
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
    # why the entry could not be read as a request at all (a malformed line, a field too long, ...)
    unreadable: str | None = None
    position: str = ""  # where in its file: "line 3", "item 2"

    @classmethod
    def from_mapping(cls, fields, source: str, position: str = "") -> "PrivacyRequest":
        """Accepts ``identifier: "type:value"`` or ``identifier_type`` and ``identifier_value``."""
        if not isinstance(fields, dict):
            return cls.invalid(source, f"not a request object (a JSON {type(fields).__name__})", position,
                               repr(fields)[:200])
        fields = {str(k).strip().lower(): ("" if v is None else str(v).strip()) for k, v in fields.items()}
        too_long = sorted(k for k, v in fields.items() if len(v) > MAX_FIELD_CHARS)
        if too_long:
            return cls.invalid(source, f"field {too_long[0][:40]!r} is longer than {MAX_FIELD_CHARS} characters",
                               position, json.dumps(fields, sort_keys=True))
        identifier_type, value = fields.get("identifier_type", ""), fields.get("identifier_value", "")
        if not identifier_type and ":" in fields.get("identifier", ""):
            identifier_type, _, value = fields["identifier"].partition(":")
        action = fields.get("action", "").lower()
        request_id = fields.get("request_id") or "req-" + _digest(source, action, identifier_type, value,
                                                                  fields.get("requested_by", ""))
        return cls(request_id, action, identifier_type.strip().lower(), value.strip(),
                   fields.get("requested_by", ""), fields.get("requested_at") or None, source, position=position)

    @classmethod
    def invalid(cls, source: str, reason: str, position: str = "", content: str = "") -> "PrivacyRequest":
        return cls("invalid-" + _digest(source, position, content, reason), "", "", "", "", None, source, reason,
                   position)

    @property
    def fingerprint(self) -> str:
        """What the request asks: a request id used again for another request is refused."""
        return _digest(self.action, self.identifier_type, self.identifier_value, self.requested_by)

    @property
    def audit_id(self) -> str:
        """The request id, or one made of the content when the given one is not a safe name."""
        return self.request_id if REQUEST_ID.fullmatch(self.request_id) else "invalid-" + _digest(
            self.source, self.request_id, self.fingerprint)

    def problem(self, rules: dict) -> str | None:
        """Why the request cannot be processed (and where it is in its file), or None."""
        problem = self._problem(rules)
        return f"{self.position}: {problem}" if problem and self.position else problem

    def _problem(self, rules: dict) -> str | None:
        if self.unreadable:
            return self.unreadable
        if not REQUEST_ID.fullmatch(self.request_id):
            return "request_id must be 1 to 128 of the characters A-Z a-z 0-9 . _ -, starting with a letter or digit"
        if self.action not in ACTIONS:
            return f"unknown action {self.action[:40]!r} (use one of {', '.join(ACTIONS)})"
        if self.identifier_type not in rules["identifier_types"]:
            return (f"unknown identifier type {self.identifier_type[:40]!r} "
                    f"(use one of {', '.join(rules['identifier_types'])})")
        if not self.identifier_value:
            return "no identifier value"
        if any(ord(c) < 32 for c in self.identifier_value + self.requested_by):
            return "a control character in the identifier or requested_by"
        if not self.requested_by:
            return "requested_by is required (who filed the request)"
        return None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def read_request_file(path: Path) -> list[PrivacyRequest]:
    """The requests of one file: JSON (an object or a list), JSON lines, YAML (a list, or
    ``requests:`` holding one) or CSV with a header row. An entry that cannot be read is an invalid
    request naming its line or item; a file that cannot be read at all is one."""
    source = f"privacy/{path.name}"
    if path.stat().st_size > MAX_REQUEST_FILE_BYTES:
        return [PrivacyRequest.invalid(source, f"request file larger than {MAX_REQUEST_FILE_BYTES >> 20} MiB")]
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return [PrivacyRequest.invalid(source, "request file is not UTF-8 text")]
    if path.suffix == ".csv":
        return _csv_requests(text, source)
    if path.suffix == ".jsonl":
        requests = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                where = f"line {number}"
                try:
                    requests.append(PrivacyRequest.from_mapping(json.loads(line), source, where))
                except (ValueError, RecursionError):
                    requests.append(PrivacyRequest.invalid(source, "not JSON", where, line[:200]))
        return requests
    try:
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, RecursionError, yaml.YAMLError) as error:
        first_line = (str(error).splitlines() or [""])[0][:200]
        return [PrivacyRequest.invalid(source, f"unreadable request file: {first_line}", content=text[:200])]
    if isinstance(loaded, dict):
        loaded = loaded.get("requests", [loaded])
    if not isinstance(loaded, list):
        return [PrivacyRequest.invalid(source, "expected a request object or a list of them")]
    return [PrivacyRequest.from_mapping(item, source, f"item {number}") for number, item in enumerate(loaded, 1)]


def _csv_requests(text: str, source: str) -> list[PrivacyRequest]:
    rows = csv.reader(io.StringIO(text))
    requests, header = [], None
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return requests
        except csv.Error as error:  # a NUL byte, a field over the csv module's limit, ...
            requests.append(PrivacyRequest.invalid(source, f"unreadable CSV row: {error}", f"line {rows.line_num}"))
            continue
        if header is None:
            header = row
        elif any(cell.strip() for cell in row):
            where = f"line {rows.line_num}"
            if len(row) > len(header):
                requests.append(PrivacyRequest.invalid(source, "more fields than the header names", where, repr(row)[:200]))
            else:
                requests.append(PrivacyRequest.from_mapping(dict(zip(header, row)), source, where))


def request_files(landing_dir: Path) -> list[Path]:
    """The request files waiting in ``LANDING_DIR/privacy/`` (regular files only: a link is not
    followed out of the folder)."""
    folder = landing_dir / "privacy"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in REQUEST_FILE_SUFFIXES and not p.is_symlink() and p.is_file())


def _set_aside(path: Path) -> Path:
    """Moves a file holding invalid requests out of the inbox, named by its content (its name may
    hold an identifier), so that it never blocks a later run and can be fixed and filed again."""
    folder = path.parent / INVALID_FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / f"{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}{path.suffix}"
    path.replace(target)
    return target


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


def export_document(conn, profile_id: str, request_id: str, generated_at: datetime) -> dict:
    document: dict = {"request_id": request_id, "generated_at": generated_at.isoformat(), "profile_id": profile_id}
    for section, sql in EXPORT_SECTIONS.items():
        schema, table = re.search(r"from (\w+)\.(\w+)", sql).groups()
        rows = _rows(conn, sql, {"profile_id": profile_id}) if table_exists(conn, schema, table) else []
        document[section] = (rows[0] if rows else None) if section in SINGLE_ROW_SECTIONS else rows
    if document["profile"]:
        document["traits"] = document["profile"].pop("traits", None)
    return document


def export_path(export_dir: Path, request_id: str) -> Path:
    """``EXPORT_DIR/privacy/<request_id>.json``, checked to lie in that folder."""
    folder = (export_dir / "privacy").resolve()
    path = (folder / f"{request_id}.json").resolve()
    if not REQUEST_ID.fullmatch(request_id) or path.parent != folder:
        raise ValueError("a request id must be a plain file name")
    return path


def _write_export(conn, request_id: str, profile_ids: list[str], export_dir: Path) -> tuple[str, str]:
    generated_at = _now()
    documents = [export_document(conn, profile_id, request_id, generated_at) for profile_id in profile_ids]
    path = export_path(export_dir, request_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = documents[0] if len(documents) == 1 else documents
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    temporary.replace(path)
    return str(path), f"{sum(len(d['events']) for d in documents)} events"


# ---------------------------------------------------------------------------------------------
# Past files: exports and lookup pictures
# ---------------------------------------------------------------------------------------------


def scrub_export_files(conn, export_dir: Path, profile_ids: list[str]) -> int:
    """Past exports lose the rows of the profiles, found by their ``profile_id`` column (audience
    member lists and change files, CSV and Parquet) or field (privacy exports, removed whole)."""
    if not export_dir.is_dir() or not profile_ids:
        return 0
    erased = set(profile_ids)
    scrubbed = 0
    for path in sorted(export_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix == ".csv":
            scrubbed += _scrub_csv(path, erased)
        elif path.suffix == ".json" and path.parent.name == "privacy":
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            documents = body if isinstance(body, list) else [body]
            if any(isinstance(d, dict) and d.get("profile_id") in erased for d in documents):
                path.unlink()
                scrubbed += 1
        elif path.suffix == ".parquet":
            source = quote_literal(str(path))
            names = [r[0] for r in conn.execute(f"describe select * from read_parquet({source})").fetchall()]
            if "profile_id" not in names:
                continue
            where = "profile_id in (select unnest($ids::varchar[]))"
            if conn.execute(f"select count(*) from read_parquet({source}) where {where}", {"ids": sorted(erased)}).fetchone()[0]:
                rewritten = path.with_name(path.name + ".scrubbed")
                conn.execute(f"copy (select * from read_parquet({source}) where not ({where})) "
                             f"to {quote_literal(str(rewritten))} (format parquet)", {"ids": sorted(erased)})
                rewritten.replace(path)
                scrubbed += 1
    return scrubbed


def _scrub_csv(path: Path, erased: set[str]) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or "profile_id" not in rows[0]:
        return 0
    column = rows[0].index("profile_id")
    kept = [rows[0]] + [row for row in rows[1:] if len(row) <= column or row[column] not in erased]
    if len(kept) == len(rows):
        return 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(kept)
    return 1


def remove_lookup_pictures(profile_ids: list[str]) -> int:
    """The lookup's pictures of the profiles (``<profile_id>.dot`` / ``.svg``)."""
    from orchestration.core import settings

    folder = settings.lookup_graph_dir()
    removed = 0
    for profile_id in profile_ids:
        for suffix in (".dot", ".svg"):
            path = folder / f"{profile_id}{suffix}"
            if path.parent == folder and path.is_file():
                path.unlink()
                removed += 1
    return removed


# ---------------------------------------------------------------------------------------------
# Processing a batch
# ---------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Batch:
    outcomes: Counter = field(default_factory=Counter)  # (action, outcome) → requests
    files_done: list[str] = field(default_factory=list)
    files_set_aside: list[str] = field(default_factory=list)
    skipped: int = 0


def process_requests(conn, landing_dir: Path, extra: list[dict], *, rules: dict, salt: str,
                     export_dir: Path, spark_erasure: Path | None = None) -> Batch:
    """Every pending request: from the run configuration first, then the files in
    ``LANDING_DIR/privacy/`` in name order, set-based and in one transaction. A request already in
    the log is skipped (a request is processed once); a request id already used for a different
    request is refused. A file whose requests were all valid is removed, since it names the person;
    one holding an invalid request is set aside in ``privacy/invalid/``."""
    create_privacy_tables(conn)
    batch = Batch()
    files = request_files(landing_dir)
    incoming = [PrivacyRequest.from_mapping(item, "run_config", f"item {number}") for number, item in enumerate(extra, 1)]
    invalid_in: dict[Path, bool] = {}
    for path in files:
        requests = read_request_file(path)
        invalid_in[path] = any(r.problem(rules) for r in requests)
        incoming += requests
    # An invalid request reserves nothing: fixed, it may be filed again under the same id.
    seen: dict[str, set[str]] = {}
    for request_id, fingerprint in conn.execute(
            "select request_id, fingerprint from privacy.requests where outcome != 'invalid'").fetchall():
        seen.setdefault(request_id, set()).add(fingerprint)
    audit: list[dict] = []
    received_at = _now()
    for request in incoming:
        problem = request.problem(rules)
        row = {"request_id": request.audit_id, "action": request.action or None,
               "identifier_type": request.identifier_type or None, "identifier_value": request.identifier_value,
               "requested_by": request.requested_by or None, "requested_at": request.requested_at,
               "source": request.source, "outcome": "invalid" if problem else None, "detail": problem,
               "fingerprint": request.fingerprint}
        if not problem:
            known = seen.setdefault(row["request_id"], set())
            if request.fingerprint in known:
                batch.skipped += 1
                continue
            if known:
                row["outcome"], row["detail"] = "refused", "request_id already used for a different request"
            known.add(request.fingerprint)
        audit.append(row)
    conn.execute("begin transaction")
    try:
        _process(conn, audit, rules=rules, salt=salt, export_dir=export_dir, received_at=received_at,
                 spark_erasure=spark_erasure)
        # an action that is none of ACTIONS is counted as unknown: it is untrusted text
        batch.outcomes.update(conn.execute(
            f"select case when action in ({', '.join(map(quote_literal, ACTIONS))}) then action else 'unknown' end, "
            "outcome from privacy_incoming").fetchall())
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    finally:
        conn.execute("drop table if exists privacy_incoming")
        erasure.drop_temp_tables(conn)
    for path in files:
        if invalid_in[path]:
            batch.files_set_aside.append(_set_aside(path).name)
        else:
            path.unlink()
            batch.files_done.append(path.name)
    if any(action == "delete" and outcome == "completed" for action, outcome in batch.outcomes):
        conn.execute("checkpoint")  # write the erasure into the database file now
    return batch


AUDIT_COLUMNS = ("request_id", "action", "identifier_type", "identifier_value", "requested_by", "requested_at",
                 "source", "outcome", "detail", "fingerprint")


def _process(conn, audit: list[dict], *, rules: dict, salt: str, export_dir: Path, received_at: datetime,
             spark_erasure: Path | None = None) -> None:
    """Runs the requests of ``audit`` (rows whose ``outcome`` is still None) and records them all."""
    conn.execute(f"create or replace temp table privacy_incoming ({', '.join(c + ' varchar' for c in AUDIT_COLUMNS)}, "
                 "position integer, normalized varchar, identifier_hash varchar, profiles_found bigint default 0, "
                 "identifiers_erased bigint default 0, rows_erased bigint default 0, rows_erased_by_table varchar, "
                 "files_scrubbed bigint default 0, export_path varchar)")
    if not audit:
        return
    columns = {c: [row[c] for row in audit] for c in AUDIT_COLUMNS}
    conn.execute(
        f"insert into privacy_incoming ({', '.join(AUDIT_COLUMNS)}, position) "
        f"select {', '.join(f'unnest(${c}::varchar[])' for c in AUDIT_COLUMNS)}, unnest(range(1, $n + 1))",
        {**columns, "n": len(audit)})
    # Normalised and hashed once, in SQL, as the dbt models and the screen do.
    normalized = normalize_by_type_sql("identifier_type", "identifier_value", rules)
    conn.execute(f"update privacy_incoming set normalized = {normalized} where outcome is null")
    conn.execute("update privacy_incoming set outcome = 'invalid', detail = 'the value cannot be normalised' "
                 "where outcome is null and normalized is null")
    conn.execute(f"update privacy_incoming set identifier_hash = {hash_sql('$salt', 'identifier_type', 'normalized')} "
                 "where normalized is not null", {"salt": salt})
    junk = _junk_sql(conn)
    conn.execute(f"""
        update privacy_incoming set outcome = 'refused',
            detail = 'a junk identifier (see marts.junk_identifiers) is not one person''s'
        where outcome is null and action in ('export', 'delete') and (identifier_type, normalized) in ({junk})
    """)
    now = _now()
    # Locks, then unlocks (an unlock finds nothing when the identifier was not locked).
    conn.execute("""
        insert into privacy.locks
        select identifier_type, identifier_hash, min(request_id), $now from privacy_incoming
        where outcome is null and action = 'lock' group by all
        on conflict do nothing
    """, {"now": now})
    conn.execute("""
        update privacy_incoming as r set outcome = 'completed', detail = 'locked: lines carrying it are rejected at ingestion'
        where outcome is null and action = 'lock'
    """)
    conn.execute("""
        update privacy_incoming as r set
            outcome = case when l.identifier_hash is null then 'not_found' else 'completed' end,
            detail = case when l.identifier_hash is null then 'it was not locked' end
        from privacy_incoming as i
        left join privacy.locks as l using (identifier_type, identifier_hash)
        where r.position = i.position and r.outcome is null and r.action = 'unlock'
    """)
    conn.execute("delete from privacy.locks where (identifier_type, identifier_hash) in "
                 "(select identifier_type, identifier_hash from privacy_incoming where action = 'unlock' "
                 "and outcome = 'completed')")
    for position, request_id, identifier_type, value in conn.execute(
            "select position, request_id, identifier_type, normalized from privacy_incoming "
            "where outcome is null and action = 'export' order by position").fetchall():
        profile_ids = [r[0] for r in conn.execute(
            "select distinct profile_id from marts.profile_identifiers where identifier_type = ? "
            "and identifier_value = ? order by 1", [identifier_type, value]).fetchall()
        ] if table_exists(conn, "marts", "profile_identifiers") else []
        if profile_ids:
            path, detail = _write_export(conn, request_id, profile_ids, export_dir)
            conn.execute("update privacy_incoming set outcome = 'completed', detail = ?, export_path = ?, "
                         "profiles_found = ? where position = ?", [detail, path, len(profile_ids), position])
        else:
            conn.execute("update privacy_incoming set outcome = 'not_found', detail = 'no profile holds this identifier' "
                         "where position = ?", [position])
    _delete(conn, rules=rules, salt=salt, export_dir=export_dir, junk_sql=junk, now=now, spark_erasure=spark_erasure)
    conn.execute(
        """
        insert into privacy.requests by name
        select request_id, action, identifier_type, identifier_hash, requested_by,
               try_cast(requested_at as timestamp) as requested_at, source, $received_at as received_at,
               $now as processed_at, outcome, detail, profiles_found, identifiers_erased, rows_erased,
               rows_erased_by_table::json as rows_erased_by_table, files_scrubbed, export_path, fingerprint
        from privacy_incoming order by position
        """, {"received_at": received_at, "now": _now()})


def _junk_sql(conn) -> str:
    """The (type, value) pairs that are junk, whatever has been built so far."""
    parts = ["select null::varchar, null::varchar where false"]
    if table_exists(conn, "marts", "junk_identifiers"):
        parts.append("select identifier_type, identifier_value from marts.junk_identifiers")
    if table_exists(conn, "intermediate", "int_identity_nodes"):
        parts.append("select identifier_type, identifier_value from intermediate.int_identity_nodes where is_junk")
    return " union all ".join(parts)


def _delete(conn, *, rules: dict, salt: str, export_dir: Path, junk_sql: str, now: datetime,
            spark_erasure: Path | None) -> None:
    """Every delete request of the batch, set-based: the people are resolved by lineage (erasure.py),
    their rows erased, their identifiers tombstoned; a request naming an identifier no profile holds
    erases nothing and is ``not_found``. On the Spark target (``spark_erasure``: the file of line
    keys Spark has still to remove) the lines are found in the control database's views and left
    to Spark (orchestration/spark/job.py)."""
    conn.execute("""
        create or replace temp table erase_requests as
        select request_id, identifier_type, normalized as identifier_value
        from privacy_incoming where outcome is null and action = 'delete'
    """)
    if not conn.execute("select count(*) from erase_requests").fetchone()[0]:
        return

    def normalize(type_expr: str, value_expr: str) -> str:
        return normalize_by_type_sql(type_expr, value_expr, rules)

    if spark_erasure is None:
        erasure.resolve_people(conn, junk_sql)
        rows = erasure.erase_rows(conn, list(rules["identifier_types"]), normalize)
    else:  # the rows are views of Spark's tables: Spark removes the lines, then builds every model again
        erasure.resolve_people(conn, junk_sql, erasure.ON_SPARK)
        rows, lines = erasure.erased_raw_lines(conn, list(rules["identifier_types"]), normalize)
        erasure.add_pending_lines(spark_erasure, lines)
    conn.execute(f"""
        insert into privacy.tombstones
        select identifier_type, {hash_sql('$salt', 'identifier_type', 'identifier_value')}, min(request_id), $now
        from erase_identifiers group by all
        on conflict do nothing
    """, {"salt": salt, "now": now})
    profiles, identifiers = erasure.erased_profiles(conn), erasure.erased_identifiers(conn)
    all_profiles = sorted({p for ids in profiles.values() for p in ids})
    files = scrub_export_files(conn, export_dir, all_profiles) + remove_lookup_pictures(all_profiles)
    for (request_id,) in conn.execute("select distinct request_id from erase_requests order by 1").fetchall():
        found = profiles.get(request_id, [])
        conn.execute(
            """
            update privacy_incoming set outcome = ?, detail = ?, profiles_found = ?, identifiers_erased = ?,
                rows_erased = ?, rows_erased_by_table = ?, files_scrubbed = ?
            where request_id = ? and outcome is null and action = 'delete'
            """,
            ["completed" if found else "not_found", None if found else "no profile holds this identifier: nothing erased",
             len(found), len(identifiers.get(request_id, [])), sum(rows.get(request_id, Counter()).values()),
             erasure.rows_by_table_json(rows.get(request_id, Counter())), files if found else 0, request_id])
