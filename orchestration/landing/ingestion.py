"""Landing files → ``raw`` tables, with DuckDB's own readers.

Each landing file is loaded in one transaction: its accepted lines go to the raw table of their
message type (or ``raw.contacts``), the others to ``raw.rejected_records`` with a reason, and the
file itself to ``raw.loaded_files`` with its size and SHA-256. A file that is already recorded (same
relative path, same content) is skipped, so re-running is idempotent; a run that dies part-way rolls
back the file it was on, and the next run loads it again.

One file never stops the others, and nothing from outside comes in: a file whose real path (symlinks
followed) is outside the landing folder is recorded unread (``outside_landing_dir``); a file that
cannot be read is recorded (``unreadable_file``) and loads on the first run that can read it; a CSV
wider than ``LANDING_MAX_CSV_COLUMNS`` is rejected whole (``too_many_columns``) before DuckDB sees it.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
from isal import isal_zlib

from orchestration.core.warehouse import quote_identifier, quote_literal
from orchestration.identity.rules import CONTACT_COLUMNS, PREVIOUS_ID_PATH, IdentityRules, snake_case
from orchestration.landing import sources as landing_sources
from orchestration.landing.sources import LandingSource

# Segment spec message type → raw table that keeps it.
MESSAGE_TABLES: dict[str, str] = {
    "track": "tracks",
    "identify": "identifies",
    "page": "pages",
    "screen": "screens",
    "alias": "aliases",
    "group": "groups",
}
CONTACTS_TABLE = "contacts"
RAW_TABLES = [*MESSAGE_TABLES.values(), CONTACTS_TABLE]

# Header names (after snake-casing) that hold a contact's e-mail or phone, in order of preference.
EMAIL_COLUMNS = ("email", "e_mail", "email_address", "emailaddress", "mail")
PHONE_COLUMNS = ("phone", "phone_number", "phonenumber", "mobile", "mobile_phone", "telephone", "tel")



@dataclass(frozen=True)
class IdentityFields:
    """Where a person's identity can be: a message with none of ``message_paths`` (JSON paths), or a
    contact row with no e-mail, phone or ``contact_columns`` value, is rejected at the door."""

    message_paths: tuple[str, ...] = ("$.anonymousId", "$.userId", "$.previousId", "$.traits.email",
                                      "$.traits.phone", "$.context.traits.email", "$.context.traits.phone")
    contact_columns: tuple[str, ...] = ()

    @classmethod
    def from_rules(cls, rules: "dict | IdentityRules") -> "IdentityFields":
        """The fields the identity rules read (identity_rules.py: every identifier type, custom ones
        included), and a message's ids whatever the rules say."""
        rules = IdentityRules.parse(rules)
        paths = ["$.anonymousId", "$.userId", PREVIOUS_ID_PATH, *(p for _, p in rules.message_fields())]
        # The list's e-mail and phone columns always count (EMAIL_COLUMNS, PHONE_COLUMNS).
        columns = [c for _, c in rules.contact_fields() if c not in CONTACT_COLUMNS]
        return cls(tuple(dict.fromkeys(paths)), tuple(dict.fromkeys(columns)))

_MESSAGE_COLUMNS = """
    message_id varchar not null,
    message_id_is_derived boolean not null,
    payload json not null,
    load_id varchar not null,
    file_path varchar not null,
    line_number bigint not null,
    loaded_at timestamp not null
"""

RAW_DDL = [
    "create schema if not exists raw",
    """
    create table if not exists raw.loaded_files (
        load_id varchar primary key,
        file_path varchar not null,
        file_kind varchar not null,
        size_bytes bigint not null,
        modified_at timestamp,
        content_sha256 varchar not null,
        loaded_at timestamp not null,
        lines_total bigint not null,
        blank_lines bigint not null,
        lines_accepted bigint not null,
        lines_rejected bigint not null
    )
    """,
    """
    create table if not exists raw.rejected_records (
        load_id varchar not null,
        file_path varchar not null,
        line_number bigint,
        raw_text varchar,
        reason varchar not null,
        detail varchar,
        rejected_at timestamp not null
    )
    """,
    *[f"create table if not exists raw.{table} ({_MESSAGE_COLUMNS})" for table in MESSAGE_TABLES.values()],
    """
    create table if not exists raw.contacts (
        list_name varchar not null,
        row_number bigint not null,
        email varchar,
        phone varchar,
        traits json,
        load_id varchar not null,
        file_path varchar not null,
        line_number bigint not null,
        loaded_at timestamp not null
    )
    """,
]


@dataclass(frozen=True)
class LandingFile:
    path: Path
    relative_path: str
    kind: str  # 'events', 'contacts' or 'source:<name>' (a registered landing source)
    source: LandingSource | None = None


@dataclass
class FileResult:
    relative_path: str
    accepted: Counter = field(default_factory=Counter)  # raw table → rows
    rejected: Counter = field(default_factory=Counter)  # reason → lines


@dataclass
class IngestionSummary:
    files_loaded: list[FileResult] = field(default_factory=list)
    files_skipped: int = 0

    @property
    def accepted(self) -> Counter:
        return sum((f.accepted for f in self.files_loaded), Counter())

    @property
    def rejected(self) -> Counter:
        return sum((f.rejected for f in self.files_loaded), Counter())


def create_raw_tables(conn: duckdb.DuckDBPyConnection, sources: list[LandingSource] = ()) -> None:
    for statement in RAW_DDL:
        conn.execute(statement)
    for source in sources:
        conn.execute(f"create table if not exists raw.{source.table} ({_MESSAGE_COLUMNS})")


def discover_landing_files(landing_dir: Path, sources: list[LandingSource] = ()) -> list[LandingFile]:
    """Event files (``events/**/*.jsonl[.gz]``), contact lists (``contacts/*.csv``) and the files of
    registered landing sources (``<folder>/**``), sorted."""
    found: list[LandingFile] = []
    events_dir, contacts_dir = landing_dir / "events", landing_dir / "contacts"
    if events_dir.is_dir():
        for path in sorted(events_dir.rglob("*")):
            if path.is_file() and (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")):
                found.append(LandingFile(path, path.relative_to(landing_dir).as_posix(), "events"))
    if contacts_dir.is_dir():
        for path in sorted(contacts_dir.glob("*.csv")):
            if path.is_file():
                found.append(LandingFile(path, path.relative_to(landing_dir).as_posix(), "contacts"))
    for source in sources:
        for path in sorted((landing_dir / source.folder).rglob("*")):
            if path.is_file() and source.matches(path):
                found.append(LandingFile(path, path.relative_to(landing_dir).as_posix(), source.kind, source))
    return found


# DuckDB's CSV planner slows down with the square of the width (500 columns 0.4 s, 2,000 19 s,
# 10,000 more than 7 minutes, holding the writer lock): wider files are rejected from their header.
MAX_CSV_COLUMNS_VARIABLE = "LANDING_MAX_CSV_COLUMNS"
DEFAULT_MAX_CSV_COLUMNS = 1_000
HEADER_READ_BYTES = 4 << 20  # a header is counted from at most this much of the first line
KEPT_HEADER_CHARACTERS = 1_000  # of a rejected file's header, in raw_text
CSV_DELIMITERS = (",", ";", "\t", "|")  # the ones DuckDB's sniffer tries for contact lists


def max_csv_columns() -> int:
    """The widest CSV/TSV file that lands: ``LANDING_MAX_CSV_COLUMNS`` (default 1,000)."""
    text = os.environ.get(MAX_CSV_COLUMNS_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_CSV_COLUMNS
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{MAX_CSV_COLUMNS_VARIABLE}: expected a whole number of columns (1 or more), got {text!r}")
    return int(text)


def csv_header_columns(header: str, delimiter: str | None = None) -> int:
    """How many columns a header line has (quotes respected); without a delimiter, the most any
    delimiter DuckDB might pick gives (an upper bound: the limit is a guard, not a parser)."""
    header = header.removeprefix("\ufeff")
    delimiters = (delimiter,) if delimiter else CSV_DELIMITERS
    return max(len(next(csv.reader([header], delimiter=d), [])) for d in delimiters)


def _too_wide(header: str, delimiter: str | None = None) -> "WholeFileRejection | None":
    limit, columns = max_csv_columns(), csv_header_columns(header, delimiter)
    if columns <= limit:
        return None
    return WholeFileRejection(
        "too_many_columns",
        f"{columns} columns, more than {MAX_CSV_COLUMNS_VARIABLE} ({limit}) allows: DuckDB plans a file this "
        "wide for minutes; split it or raise the limit",
        header[:KEPT_HEADER_CHARACTERS], 1)


def _inside(path: Path, root: Path) -> bool:
    """Whether the file's real path (every symlink followed) is in ``root`` (resolved)."""
    return path.resolve().is_relative_to(root)


def _recorded_unread(reason: str, detail: str) -> tuple[str, "WholeFileRejection"]:
    """A file rejected without reading it: its rejection, and what stands for its content hash in
    raw.loaded_files (the same while the cause lasts, so a re-run skips it; never a real SHA-256, so
    the file loads once it can be read)."""
    return hashlib.sha256(f"{reason}\n{detail}".encode()).hexdigest(), WholeFileRejection(reason, detail)


def _unread_detail(error: BaseException) -> str:
    """An OS or DuckDB read error, without the file's absolute path."""
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


# What reading a landing file can raise besides bad content: no permission, gone since discovery,
# an I/O error.
UNREADABLE = (OSError, duckdb.IOException, duckdb.PermissionException)


def hash_or_reject(landing_file: "LandingFile", root: Path) -> tuple[str, "WholeFileRejection | None"]:
    """The file's content hash; for a file that must not or cannot be read, what stands for it and
    the file's rejection. ``root``: the landing folder, resolved."""
    if not _inside(landing_file.path, root):
        # A symlink out of the landing folder: never opened (it could name any file on the machine).
        return _recorded_unread("outside_landing_dir", "a symlink to a file outside the landing folder: not read")
    try:
        return file_sha256(landing_file.path), None
    except OSError as error:
        return _recorded_unread("unreadable_file", _unread_detail(error))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest_landing_dir(conn: duckdb.DuckDBPyConnection, landing_dir: Path,
                       identity: IdentityFields = IdentityFields(),
                       sources: list[LandingSource] = (), screen=None) -> IngestionSummary:
    """Load every landing file not loaded before; one transaction per file. ``screen`` (a
    ``privacy_screen.PrivacyScreen``) rejects the lines of erased or locked identities."""
    create_raw_tables(conn, sources)
    max_csv_columns()  # a wrong limit stops the run before any file, not part-way
    root = landing_dir.resolve()
    already = {
        (path, sha)
        for path, sha in conn.execute("select file_path, content_sha256 from raw.loaded_files").fetchall()
    }
    summary = IngestionSummary()
    to_load = []
    for landing_file in discover_landing_files(landing_dir, sources):
        sha, rejection = hash_or_reject(landing_file, root)
        if (landing_file.relative_path, sha) in already:
            summary.files_skipped += 1
        else:
            to_load.append((landing_file, sha, rejection))
    with GunzipAhead([landing_file.path for landing_file, _, rejection in to_load if rejection is None]) as gunzip:
        for landing_file, sha, rejection in to_load:
            summary.files_loaded.append(load_file(conn, landing_file, sha, identity, screen, gunzip.take, rejection))
    return summary


class GunzipAhead:
    """Decompresses the next ``.gz`` file in a thread while DuckDB loads the current one (zlib and
    DuckDB both release the GIL: on two cores the copy costs next to no wall time)."""

    def __init__(self, paths: list[Path]):
        self._waiting = [path for path in paths if path.name.endswith(".gz")]
        self._started: dict[Path, Future] = {}
        self._folders = itertools.count()
        self._scratch = tempfile.TemporaryDirectory(prefix="landing-ahead-")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gunzip-ahead")

    def __enter__(self) -> "GunzipAhead":
        self._start_next()
        return self

    def __exit__(self, *exc_info) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._scratch.cleanup()

    def _start_next(self) -> None:
        if self._waiting:
            path = self._waiting.pop(0)
            folder = Path(self._scratch.name) / str(next(self._folders))
            folder.mkdir()
            self._started[path] = self._pool.submit(_text_pieces, path, folder)

    def take(self, path: Path, scratch: Path) -> list[Path]:
        """As ``_text_pieces(path, scratch)``, from the copy made ahead when there is one."""
        started = self._started.pop(path, None)
        self._start_next()
        if started is None:
            return _text_pieces(path, scratch)
        moved = []
        for piece in started.result():  # raises what decompressing raised
            moved.append(scratch / piece.name)
            os.replace(piece, moved[-1])  # the caller's scratch folder removes it
        return moved


def load_file(conn: duckdb.DuckDBPyConnection, landing_file: LandingFile, sha: str,
               identity: IdentityFields, screen=None,
               text_pieces: Callable[[Path, Path], list[Path]] | None = None,
               rejection: WholeFileRejection | None = None, loaded_at: datetime | None = None) -> FileResult:
    """Loads one file in one transaction. ``loaded_at`` is now unless given (Spark's landing gives
    each file its time in discovery order, as loading them one after the other would)."""
    try:  # the link itself, not what it points to
        stat = landing_file.path.lstat()
        size, modified = stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc).replace(tzinfo=None)
    except OSError:  # gone since discovery: reading it fails below and says so
        size, modified = 0, None
    # Staging reads the file into temp tables; a read error aborts DuckDB's transaction, so it runs
    # before the transaction that writes the raw tables.
    if landing_file.source is not None:
        stage, write, identity = _stage_source_file, _write_source_records, landing_file.source
    else:
        stage, write = (_stage_events, _write_events) if landing_file.kind == "events" else (_stage_contacts, _write_contacts)
    staged = rejection
    if staged is None:
        try:
            if landing_file.path.is_symlink():
                size = landing_file.path.stat().st_size
            staged = stage(conn, landing_file.path, identity, text_pieces or _text_pieces)
        except UNREADABLE as error:
            # Gone or unreadable since it was hashed (or a passing I/O error): recorded under a
            # stand-in hash, not its content's, so the next run that can read it loads it.
            sha, staged = _recorded_unread("unreadable_file", _unread_detail(error))
    load_id = hashlib.md5(f"{landing_file.relative_path}\n{sha}".encode()).hexdigest()
    context = {
        "load_id": load_id,
        "file_path": landing_file.relative_path,
        "loaded_at": loaded_at or datetime.now(timezone.utc).replace(tzinfo=None),
    }
    conn.execute("begin transaction")
    try:
        if isinstance(staged, WholeFileRejection):
            accepted, rejected, blank = _reject_whole_file(conn, context, staged)
        else:
            screened = screen.screen(conn, landing_file.kind, context, landing_file.source) if screen else Counter()
            accepted, rejected, blank = write(conn, context, staged)
            rejected += screened
        conn.execute(
            "insert into raw.loaded_files values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                load_id,
                landing_file.relative_path,
                landing_file.kind,
                size,
                modified,
                sha,
                context["loaded_at"],
                sum(accepted.values()) + sum(rejected.values()),
                blank,
                sum(accepted.values()),
                sum(rejected.values()),
            ],
        )
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return FileResult(landing_file.relative_path, accepted, rejected)


@dataclass(frozen=True)
class WholeFileRejection:
    """A file that cannot be read at all: it is recorded as one rejected record."""

    reason: str
    detail: str
    raw_text: str | None = None
    line_number: int | None = None


def _reject_whole_file(conn, context: dict, rejection: WholeFileRejection):
    conn.execute(
        "insert into raw.rejected_records values (?, ?, ?, ?, ?, ?, ?)",
        [context["load_id"], context["file_path"], rejection.line_number, rejection.raw_text,
         rejection.reason, rejection.detail, context["loaded_at"]],
    )
    return Counter(), Counter({rejection.reason: 1}), 0


# ---------------------------------------------------------------------------------------------
# Events (JSON lines)
# ---------------------------------------------------------------------------------------------

_known_types = ", ".join(f"'{t}'" for t in MESSAGE_TABLES)


def _classify_lines_sql(identity: IdentityFields) -> str:
    """Classifies every line of the file: a reason when it cannot be accepted, else its type and id.

    Each line's JSON is parsed twice (validate, then one multi-path extraction), not once per field."""
    paths = ["$.type", "$.messageId", *identity.message_paths]
    has_identity = " or ".join(f"nullif(trim(fields[{i}]), '') is not null" for i in range(3, len(paths) + 1))
    return f"""
create or replace temp table landing_lines as
with {landing_sources.CHECKED_LINES_CTES},
parsed as (
    select
        *,
        case when is_json then json_extract_string(line, [{", ".join(quote_literal(p) for p in paths)}]) end as fields
    from checked
),
typed as (
    select
        *,
        case when is_object then lower(trim(fields[1])) end as message_type,
        nullif(trim(fields[2]), '') as given_message_id
    from parsed
)
select
    line_number,
    line,
    is_blank,
    message_type,
    given_message_id,
    case
        when is_blank then null
        when line = {quote_literal(TRUNCATED_MARK)} then 'truncated_file'
        when strpos(line, chr(65533)) > 0 and ? then 'invalid_utf8'
        when not is_json then 'malformed_json'
        when not is_object then 'not_a_json_object'
        when message_type is null or message_type = '' then 'missing_type'
        when message_type not in ({_known_types}) then 'unknown_type'
        when not ({has_identity}) then 'no_identity'
    end as reason
from typed
"""


def _split_and_classify(conn, pieces: list[Path], classify_sql: str) -> None:
    """Reads the file's pieces (``_text_pieces``) into the temp table ``landing_split``, one row per
    line numbered through the whole file, then runs ``classify_sql`` over it (its one parameter:
    whether bad UTF-8 was replaced). A piece that is not valid UTF-8 has its bad bytes replaced:
    the lines that held them are rejected, the good lines kept."""
    conn.execute("create or replace temp table landing_split (line varchar, line_number bigint)")
    lines_before, repaired = 0, False
    for piece in pieces:
        try:
            lines_before += conn.execute(landing_sources.SPLIT_LINES_SQL, [str(piece), lines_before]).fetchone()[0]
        except duckdb.InvalidInputException as error:
            if "UTF-8" not in str(error):
                raise
            # The repaired copy goes to a temporary folder: a plain piece is the landing file itself.
            with tempfile.TemporaryDirectory(prefix="identity-warehouse-utf8-") as folder:
                fixed = Path(folder) / piece.name
                fixed.write_text(piece.read_bytes().decode("utf-8", errors="replace"), encoding="utf-8")
                lines_before += conn.execute(landing_sources.SPLIT_LINES_SQL, [str(fixed), lines_before]).fetchone()[0]
            repaired = True
    conn.execute(classify_sql, [repaired])
    conn.execute("drop table landing_split")


def _stage_events(conn, path: Path, identity: IdentityFields, text_pieces) -> WholeFileRejection | None:
    """Reads and classifies every line into the temp table ``landing_lines``."""
    return _stage_lines(conn, path, text_pieces, _classify_lines_sql(identity))


def _stage_lines(conn, path: Path, text_pieces, classify_sql: str) -> WholeFileRejection | None:
    """Splits a text file (gunzipped first) into lines and classifies them with ``classify_sql``; a
    file whose gzip cannot be read is rejected whole."""
    with tempfile.TemporaryDirectory(prefix="landing-") as scratch:
        try:
            pieces = text_pieces(path, Path(scratch))
        except UNREADABLE_GZIP as error:
            if isinstance(error, OSError) and error.errno is not None:
                raise  # the file system's error, not the content's: load_file records it to retry
            return WholeFileRejection("unreadable_file", str(error))
        _split_and_classify(conn, pieces, classify_sql)
    return None


def _write_events(conn, context: dict, _staged: None):
    params = [context["load_id"], context["file_path"], context["loaded_at"]]
    accepted: Counter = Counter()
    for message_type, table in MESSAGE_TABLES.items():
        conn.execute(
            f"""
            insert into raw.{table}
            select
                coalesce(given_message_id, 'derived-' || md5(json(line))),
                given_message_id is null,
                json(line),
                ?, ?, line_number, ?
            from landing_lines
            where reason is null and not is_blank and message_type = '{message_type}'
            order by line_number
            """,
            params,
        )
    for table, rows in conn.execute(
        "select message_type, count(*) from landing_lines where reason is null and not is_blank group by 1"
    ).fetchall():
        accepted[MESSAGE_TABLES[table]] = rows
    conn.execute(
        """
        insert into raw.rejected_records
        select ?, ?, line_number, line, reason, null, ? from landing_lines where reason is not null order by line_number
        """,
        params,
    )
    rejected = Counter(
        dict(conn.execute("select reason, count(*) from landing_lines where reason is not null group by 1").fetchall())
    )
    blank = conn.execute("select count(*) from landing_lines where is_blank").fetchone()[0]
    # string_split leaves one empty piece after the final newline: that is not a line of the file.
    if blank and conn.execute("select is_blank from landing_lines order by line_number desc limit 1").fetchone()[0]:
        blank -= 1
    conn.execute("drop table landing_lines")
    return accepted, rejected, blank


# DuckDB's read_text reads a file as one string, of at most about 3.9 GiB. A plain file up to
# PLAIN_READ_BYTES is read where it lies; a larger one, and every gzip file (which must be written
# out decompressed anyway), is read in pieces of about PIECE_BYTES.
PLAIN_READ_BYTES = 3 << 30
PIECE_BYTES = 1 << 30


class _LinePieces:
    """Writes a text into files of about ``limit`` bytes or more, each cut at a line's end. The
    newline at a cut is left out: the pieces joined by newlines are the text, and the lines of the
    pieces, one after the other, are its lines."""

    def __init__(self, folder: Path, limit: int):
        self.folder, self.limit, self.pieces = folder, limit, []
        self._file, self._written = None, 0
        self._next_piece()

    def _next_piece(self) -> None:
        if self._file:
            self._file.close()
        self.pieces.append(self.folder / f"landing-{len(self.pieces):04d}.jsonl")
        self._file, self._written = self.pieces[-1].open("wb"), 0

    def write(self, data: bytes) -> None:
        while self._written + len(data) > self.limit:
            cut = data.find(b"\n", max(0, self.limit - self._written))
            if cut < 0:
                break  # no line ends in this block past the limit: the piece grows to the next one
            self._file.write(data[:cut])
            self._next_piece()
            data = data[cut + 1:]
        self._file.write(data)
        self._written += len(data)

    def close(self) -> None:
        self._file.close()


def _text_pieces(path: Path, scratch: Path) -> list[Path]:
    """The file as plain text for ``read_text``: the file itself when it is plain and at most
    ``PLAIN_READ_BYTES``, else copies in ``scratch`` in pieces of about ``PIECE_BYTES``
    (``_LinePieces``; ``read_text`` does not decompress).

    A gzip file cut short (a transfer that died) keeps every line before the cut; the copy then
    ends with a ``TRUNCATED_MARK`` line, rejected as ``truncated_file``."""
    if not path.name.endswith(".gz") and path.stat().st_size <= PLAIN_READ_BYTES:
        return [path]
    pieces = _LinePieces(scratch, PIECE_BYTES)
    try:
        with path.open("rb") as source:
            if not path.name.endswith(".gz"):
                for block in iter(lambda: source.read(1 << 20), b""):
                    pieces.write(block)
                return pieces.pieces
            decompressor, in_member, last_byte = isal_zlib.decompressobj(31), False, b"\n"
            for block in iter(lambda: source.read(1 << 20), b""):
                while block:
                    in_member = True
                    text = decompressor.decompress(block)
                    pieces.write(text)
                    last_byte = text[-1:] or last_byte
                    block = decompressor.unused_data if decompressor.eof else b""
                    if decompressor.eof:  # a gzip file may hold several members, one after the other
                        decompressor, in_member = isal_zlib.decompressobj(31), False
            if in_member:
                pieces.write((b"" if last_byte == b"\n" else b"\n") + TRUNCATED_MARK.encode() + b"\n")
    finally:
        pieces.close()
    return pieces.pieces


TRUNCATED_MARK = "(identity-warehouse: the gzip file was cut short here)"
# What reading a damaged gzip file raises. ISA-L inflates gzip 3-4 times faster than zlib (0.6 s
# against 2.0 s for a 490 MB file), with zlib's API.
UNREADABLE_GZIP = (OSError, EOFError, zlib.error, isal_zlib.error)


# ---------------------------------------------------------------------------------------------
# Contact lists (CSV)
# ---------------------------------------------------------------------------------------------


def _pick(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in columns), None)




@dataclass(frozen=True)
class StagedContacts:
    list_name: str


def _stage_contacts(conn, path: Path, identity: IdentityFields, text_pieces) -> WholeFileRejection | StagedContacts | None:
    """Reads the list into the temp table ``landing_contacts`` (line, row, email, phone, traits, has_identity).
    Contact lists are plain CSV (``text_pieces`` is not used)."""
    header = _first_line(path)
    if header is None:  # an empty file: nothing to load, nothing to reject
        return None
    if too_wide := _too_wide(header):
        return too_wide
    try:
        conn.execute(
            """
            create or replace temp table landing_csv as
            select * from read_csv(?, header = true, all_varchar = true, quote = '"', escape = '"',
                                   store_rejects = true, rejects_table = 'landing_csv_rejects',
                                   rejects_scan = 'landing_csv_scan')
            """,
            [str(path)],
        )
    except duckdb.IOException:
        raise  # it cannot be opened: unreadable_file (load_file)
    except duckdb.Error as error:
        return WholeFileRejection("unreadable_csv", str(error).splitlines()[0], header, 1)

    source_columns = [row[0] for row in conn.execute("describe landing_csv").fetchall()]
    names = _unique_snake_names(source_columns)
    email_column = _pick(list(names.values()), EMAIL_COLUMNS)
    phone_column = _pick(list(names.values()), PHONE_COLUMNS)
    custom_columns = [name for name in identity.contact_columns if name in names.values()]
    if email_column is None and phone_column is None and not custom_columns:
        _drop_contact_temp_tables(conn)
        custom = f", or one of the identity rules' columns ({', '.join(identity.contact_columns)})" if identity.contact_columns else ""
        return WholeFileRejection(
            "missing_identifier_columns",
            f"a contact list needs an 'email' and/or a 'phone' column{custom} "
            f"(also accepted: {', '.join(EMAIL_COLUMNS[1:] + PHONE_COLUMNS[1:])}); "
            f"found: {', '.join(source_columns)}",
            header,
            1,
        )
    by_name = {snake: source for source, snake in names.items()}
    has_identity = " or ".join(
        [f"nullif(trim({quote_identifier(by_name[c])}), '') is not null" for c in (email_column, phone_column, *custom_columns) if c]
    )
    trait_pairs = ", ".join(
        f"{quote_literal(snake)}, nullif(trim({quote_identifier(source)}), '')"
        for source, snake in names.items()
        if snake not in (email_column, phone_column)
    )
    email_expr = f"nullif(trim({quote_identifier(by_name[email_column])}), '')" if email_column else "null"
    phone_expr = f"nullif(trim({quote_identifier(by_name[phone_column])}), '')" if phone_column else "null"
    traits_expr = f"json_object({trait_pairs})" if trait_pairs else "json_object()"

    # Rows are numbered by their file line (see CSV_LINE_NUMBERS: one line per record assumed).
    conn.execute(
        f"""
        create or replace temp table landing_contacts as
        with rows as (
            select row_number() over () as ordinal, {email_expr} as email, {phone_expr} as phone,
                   {traits_expr} as traits, coalesce({has_identity}, false) as has_identity
            from landing_csv
        ),
        {landing_sources.CSV_LINE_NUMBERS}
        select free_lines.line as line_number, free_lines.line - 1 as row_number, email, phone, traits, has_identity
        from rows join free_lines using (ordinal)
        """
    )
    return StagedContacts(snake_case(path.name.removesuffix(".csv")))


def _drop_contact_temp_tables(conn) -> None:
    for table in ("landing_csv", "landing_contacts", "landing_csv_rejects", "landing_csv_scan"):
        conn.execute(f"drop table if exists {table}")


def _write_contacts(conn, context: dict, staged: StagedContacts | None):
    if staged is None:
        return Counter(), Counter(), 0
    list_name = staged.list_name
    params = [context["load_id"], context["file_path"], context["loaded_at"]]
    conn.execute(
        f"""
        insert into raw.contacts
        select {quote_literal(list_name)}, row_number, email, phone, traits, ?, ?, line_number, ?
        from landing_contacts where has_identity
        order by line_number
        """,
        params,
    )
    conn.execute(
        """
        insert into raw.rejected_records
        select ?, ?, line_number, concat_ws(',', email, phone, traits::varchar), 'no_identity',
               'no e-mail, phone or other identifier in this row', ?
        from landing_contacts where not has_identity
        """,
        params,
    )
    conn.execute(
        """
        insert into raw.rejected_records
        select ?, ?, line, csv_line, 'malformed_csv_row', error_message, ?
        from (select line, any_value(csv_line) as csv_line, string_agg(error_message, '; ') as error_message
              from landing_csv_rejects group by line)
        """,
        params,
    )
    accepted_rows, no_identity = conn.execute(
        "select count(*) filter (has_identity), count(*) filter (not has_identity) from landing_contacts"
    ).fetchone()
    malformed = conn.execute("select count(distinct line) from landing_csv_rejects").fetchone()[0]
    _drop_contact_temp_tables(conn)
    rejected = Counter({k: v for k, v in {"no_identity": no_identity, "malformed_csv_row": malformed}.items() if v})
    return Counter({CONTACTS_TABLE: accepted_rows} if accepted_rows else {}), rejected, 0


def _first_line(path: Path) -> str | None:
    """The header line (at most ``HEADER_READ_BYTES`` of it), without a byte order mark."""
    with path.open("rb") as handle:
        first = handle.readline(HEADER_READ_BYTES)
    text = first.decode("utf-8", errors="replace").rstrip("\r\n").removeprefix("\ufeff")
    return text if text.strip() else None


def _unique_snake_names(columns: list[str]) -> dict[str, str]:
    """Source column → snake_case name, de-duplicated with a numeric suffix."""
    seen: Counter = Counter()
    names: dict[str, str] = {}
    for column in columns:
        base = snake_case(column)
        seen[base] += 1
        names[column] = base if seen[base] == 1 else f"{base}_{seen[base]}"
    return names


# ---------------------------------------------------------------------------------------------
# Registered landing sources (``vars: landing_sources``): any JSON lines or CSV/TSV → raw.<name>
# ---------------------------------------------------------------------------------------------


def _stage_source_file(conn, path: Path, source: LandingSource, text_pieces) -> WholeFileRejection | LandingSource:
    """Reads the file into the temp table ``landing_records`` (line_number, line, is_blank, given_message_id, reason)."""
    if source.format != "jsonl":  # read_csv reads a file of any size; only JSON lines come gzipped
        header = _first_line(path)
        if header is None:
            conn.execute("create or replace temp table landing_records as select 1 as line_number, '' as line, "
                         "true as is_blank, null as given_message_id, null as reason where false")
            return source
        if too_wide := _too_wide(header, "\t" if source.format == "tsv" else ","):
            return too_wide
        try:
            conn.execute(landing_sources.stage_delimited_sql(source), [str(path)])
        except duckdb.IOException:
            raise  # it cannot be opened: unreadable_file (load_file)
        except duckdb.Error as error:
            _drop_contact_temp_tables(conn)
            return WholeFileRejection("unreadable_csv", str(error).splitlines()[0], header, 1)
        columns = [row[0] for row in conn.execute("describe landing_csv").fetchall()]
        conn.execute(landing_sources.csv_records_sql(source, columns))
        _drop_contact_temp_tables(conn)
        return source
    return _stage_lines(conn, path, text_pieces, landing_sources.stage_jsonl_sql(source)) or source


def _write_source_records(conn, context: dict, source: LandingSource):
    params = [context["load_id"], context["file_path"], context["loaded_at"]]
    conn.execute(landing_sources.write_records_sql(source), params)
    conn.execute(
        """
        insert into raw.rejected_records
        select ?, ?, line_number, line, reason, null, ? from landing_records where reason is not null order by line_number
        """,
        params,
    )
    accepted, rejected, blank = landing_sources.count_outcomes(conn)
    conn.execute("drop table landing_records")
    return Counter({source.table: accepted} if accepted else {}), rejected, blank
