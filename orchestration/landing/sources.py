"""Landing sources beyond Segment events and contact lists, declared in ``vars: landing_sources``
of ``dbt_project.yml``, and how their files land.

Each source's files (``LANDING_DIR/<folder>/**``) land in ``raw.<name>``, one row per accepted line
or CSV row with the record as a JSON ``payload``; its staging model ``stg_<name>__events`` maps that
to messages and identifiers, and ``int_messages`` takes every registered source in. Nothing here is
specific to one source: adding one is configuration plus a staging model.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from orchestration.core.warehouse import quote_identifier, quote_literal

FORMATS = {"jsonl": (".jsonl", ".jsonl.gz", ".json"), "csv": (".csv",), "tsv": (".tsv", ".txt")}
# raw tables the product already owns: a source may not take their names.
RESERVED_NAMES = {"segment", "contacts", "tracks", "identifies", "pages", "screens", "aliases", "groups",
                  "loaded_files", "rejected_records", "events", "raw"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class LandingSource:
    name: str
    folder: str
    format: str  # jsonl | csv | tsv
    message_id: str | None = None  # field (JSON key or CSV column) holding a message id
    # field → identifier type: where its records carry identifiers (read by the privacy screen)
    identifiers: tuple[tuple[str, str], ...] = ()

    @property
    def table(self) -> str:
        return self.name

    @property
    def kind(self) -> str:
        """``raw.loaded_files.file_kind`` of this source's files."""
        return f"source:{self.name}"

    def identifier_paths(self) -> list[tuple[str, str]]:
        """(identifier type, JSON path in a record) of each declared identifier field that is one
        path of the record: a CSV column is one key of the record; a JSON field is a path (``a.b``,
        ``list[0].email``). Paths into a CSV cell's JSON or under ``[*]`` are in
        ``identifier_expressions``."""
        paths = []
        for field, kind in self.identifiers:
            cell, inner = split_field_path(field, self.format)
            if inner is None and "[*]" not in cell:
                paths.append((kind, cell))
        return paths

    def identifier_expressions(self, column: str) -> list[tuple[str, str]]:
        """(identifier type, DuckDB SQL over the record's JSON text in ``column``) of every declared
        identifier field: the privacy screen reads the same values as the staging model."""
        return [(kind, duckdb_field_sql(column, field, self.format)) for field, kind in self.identifiers]

    def matches(self, path: Path) -> bool:
        return path.name.lower().endswith(FORMATS[self.format])


# ---------------------------------------------------------------------------------------------
# Field paths: a CSV column or a JSON key, then optionally a path into JSON (``.key``, ``[0]``,
# ``[*]``: the first non-null value of any element). A CSV cell holding JSON is read as JSON: the
# path after its column goes into it. With a path, the column is written quoted when it is not a
# plain name (``"contexts"[*].userId``, ``"Member Info".email``).
# ---------------------------------------------------------------------------------------------

_SEGMENT = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_$-]*)|\.?"((?:[^"\\]|\\.)*)"|\[(\d+|\*)\]')
WILDCARD = None  # a [*] segment


def path_segments(path: str) -> list[str | int | None]:
    """``a.b[0]."odd key"[*].c`` → ``['a', 'b', 0, 'odd key', None, 'c']``; ValueError if it is not a path."""
    segments, position = [], 0
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if not match or (position == 0 and path.startswith(".")):
            raise ValueError(f"'{path}': not a field path (use key.key, key[0], key[*], \"odd key\")")
        name, quoted, index = match.groups()
        segments.append(name if name is not None else quoted.replace('\\"', '"') if quoted is not None
                        else WILDCARD if index == "*" else int(index))
        position = match.end()
    return segments


def json_path_of(segments: list[str | int | None]) -> str:
    """A JSON path (``$.a[0]."odd key"[*]``) for DuckDB's and Spark's JSON functions."""
    text = "$"
    for segment in segments:
        if segment is WILDCARD:
            text += "[*]"
        elif isinstance(segment, int):
            text += f"[{segment}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", segment):
            text += f".{segment}"
        else:
            text += '."' + segment.replace('"', '\\"') + '"'
    return text


def column_and_rest(field: str, columns: list[str] | None) -> tuple[str, str | None]:
    """A CSV field as its column and the path after it (None: the column itself)."""
    if columns is not None and field in columns:
        return field, None
    if field.startswith('"'):
        head = _SEGMENT.match(field)
        if head and head.group(2) is not None and head.end() < len(field):
            return head.group(2).replace('\\"', '"'), field[head.end():]
    for column in sorted(columns or (), key=len, reverse=True):
        if field.startswith(column) and field[len(column):len(column) + 1] in (".", "["):
            return column, field[len(column):]
    return field, None


def split_field_path(field: str, fmt: str, columns: list[str] | None = None) -> tuple[str, str | None]:
    """A field as (JSON path of the record, JSON path inside the cell's JSON or None).

    A CSV field is a column (one key of the record), optionally followed by a path into the JSON
    its cell holds; ``columns`` (a sample's header) tells where a column ends when it is not quoted.
    A JSON-lines field is one path of the record."""
    if fmt == "jsonl":
        try:
            return json_path_of(path_segments(field)), None
        except ValueError:  # a key that is no path (spaces, ...): the key itself
            return json_path_of([field]), None
    column, rest = column_and_rest(field, columns)
    return json_path_of([column]), None if rest is None else json_path_of(path_segments(rest.removeprefix(".")))


def canonical_field(field: str, fmt: str, columns: list[str]) -> str:
    """How a field is written in the registration: a CSV column with a path after it quoted, so the
    registration reads without the sample's header."""
    if fmt == "jsonl":
        return field
    column, rest = column_and_rest(field, columns)
    return field if rest is None else '"' + column.replace('"', '\\"') + '"' + rest


def duckdb_field_sql(column: str, field: str, fmt: str) -> str:
    """DuckDB SQL: the text of ``field`` in the record's JSON held in ``column`` (the first non-null
    value under a ``[*]``)."""
    cell, inner = split_field_path(field, fmt)
    expression = f"json_extract_string({column}, {quote_literal(cell)})"
    if inner is not None:
        expression = f"json_extract_string({expression}, {quote_literal(inner)})"
    if "[*]" in (inner or cell):
        expression = f"list_filter({expression}, lambda v: v is not null)[1]"
    return expression


def parse_landing_sources(config: dict | None) -> list[LandingSource]:
    """The ``landing_sources`` var as checked sources; a wrong entry names itself and the problem."""
    sources = []
    for name, entry in (config or {}).items():
        entry = entry or {}
        if not _NAME.match(str(name)) or name in RESERVED_NAMES:
            raise ValueError(f"landing source '{name}': the name must be snake_case and not one of "
                             f"{', '.join(sorted(RESERVED_NAMES))}")
        fmt = entry.get("format", "jsonl")
        if fmt not in FORMATS:
            raise ValueError(f"landing source '{name}': unknown format '{fmt}' (use one of {', '.join(FORMATS)})")
        folder = str(entry.get("folder", name)).strip("/")
        if folder in ("events", "contacts") or not folder:
            raise ValueError(f"landing source '{name}': folder '{folder}' belongs to the built-in sources")
        identifiers = entry.get("identifiers") or {}
        if not isinstance(identifiers, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in identifiers.items()):
            raise ValueError(f"landing source '{name}': identifiers must map fields to identifier types")
        sources.append(LandingSource(name, folder, fmt, entry.get("message_id"), tuple(identifiers.items())))
    return sources


def registered_sources() -> list[LandingSource]:
    from orchestration.core import settings

    return parse_landing_sources(settings.dbt_vars().get("landing_sources"))


# ---------------------------------------------------------------------------------------------
# Loading one file of a source into temp table ``landing_records`` (line_number, payload, reason)
# ---------------------------------------------------------------------------------------------


# A piece of a text file → the temp table ``landing_split`` (line, line_number), one row per line,
# numbered after the lines of the pieces before it (parameters: the piece's path, how many lines came
# before it); returns how many rows it added. Splitting is its own statement: the checks that follow
# then run on both cores over a table of lines, where in one statement they ran on one core over the
# file's single row (2.7 times slower on a 1.5 M-line file).
SPLIT_LINES_SQL = """
insert into landing_split
-- split once: splitting in both unnest() and generate_subscripts() costs 80 times more
with file_lines as (select string_split(content, chr(10)) as lines from read_text(?))
select unnest(lines) as line, generate_subscripts(lines, 1) + ? as line_number from file_lines
"""

_WHITESPACE = "chr(32) || chr(9) || chr(10) || chr(13)"

# The CTEs every JSON-lines reader starts from: the lines of ``landing_split`` in ``checked``, with
# whether each is valid JSON, blank, and an object. Copying a string costs more than parsing it:
# trims run only on the few lines that need them.
CHECKED_LINES_CTES = f"""
bom_stripped as (
    -- a UTF-8 byte order mark (Windows editors write one) opens the file, not its first line's JSON
    select line_number, case when line_number = 1 and starts_with(line, chr(65279)) then substr(line, 2) else line end as line
    from landing_split
),
lines as (
    -- a CRLF file's lines end in CR
    select line_number, case when ends_with(line, chr(13)) then rtrim(line, chr(13)) else line end as line
    from bom_stripped
),
validated as (
    select line_number, line, json_valid(line) as is_json
    from lines
),
checked as (
    select
        *,
        -- valid JSON is never blank, and is an object when it opens with a brace (no second parse)
        case when is_json then false else trim(line, {_WHITESPACE}) = '' end as is_blank,
        case
            when not is_json then null
            when starts_with(line, '{{') then true
            else starts_with(ltrim(line, {_WHITESPACE}), '{{')
        end as is_object
    from validated
)"""


def stage_jsonl_sql(source: LandingSource) -> str:
    """Every line of ``landing_split``: its JSON object, or why it is rejected (blank lines are counted apart)."""
    id_expr = (f"nullif(trim(json_extract_string(line, {quote_literal('$.' + source.message_id)})), '')"
               if source.message_id else "null")
    return f"""
create or replace temp table landing_records as
with {CHECKED_LINES_CTES}
select
    line_number,
    line,
    is_blank,
    case when is_object then {id_expr} end as given_message_id,
    case
        when is_blank then null
        when strpos(line, chr(65533)) > 0 and ? then 'invalid_utf8'
        when not is_json then 'malformed_json'
        when not is_object then 'not_a_json_object'
    end as reason
from checked
"""


def stage_delimited_sql(source: LandingSource) -> str:
    """A CSV/TSV file: every row as a JSON object keyed by the header (values as text)."""
    delimiter = "\\t" if source.format == "tsv" else ","
    return f"""
create or replace temp table landing_csv as
select * from read_csv(?, header = true, all_varchar = true, delim = '{delimiter}', quote = '"', escape = '"',
                       store_rejects = true, rejects_table = 'landing_csv_rejects', rejects_scan = 'landing_csv_scan')
"""


def write_records_sql(source: LandingSource) -> str:
    """Accepted records into ``raw.<name>``: the given message id, else ``<source>:<md5 of the record>``,
    so a re-delivered copy is recognised."""
    return f"""
insert into raw.{source.table}
select
    coalesce(given_message_id, {quote_literal(source.name + ':')} || md5(json(line))),
    given_message_id is null,
    json(line),
    ?, ?, line_number, ?
from landing_records
where reason is null and not is_blank
order by line_number
"""


def csv_records_sql(source: LandingSource, columns: list[str]) -> str:
    """``landing_csv`` (+ its rejects) → ``landing_records``, numbering rows by their file line."""
    pairs = ", ".join(f"{quote_literal(c)}, {quote_identifier(c)}" for c in columns)
    id_expr = f"nullif(trim({quote_identifier(source.message_id)}), '')" if source.message_id in columns else "null"
    return f"""
create or replace temp table landing_records as
with rows as (
    select row_number() over () as ordinal, json_object({pairs})::varchar as line, {id_expr} as given_message_id
    from landing_csv
),
{CSV_LINE_NUMBERS.strip()}
select free_lines.line as line_number, rows.line, false as is_blank, given_message_id,
       cast(null as varchar) as reason
from rows join free_lines using (ordinal)
union all
select line, any_value(csv_line), false, null, 'malformed_csv_row' from landing_csv_rejects group by line
"""


# DuckDB drops malformed rows into the rejects table with their line number. Accepted rows keep
# their order, so the k-th accepted row sits on the k-th line that was not rejected (one line per
# record assumed). Needs CTE ``rows`` (with ``ordinal``) and table ``landing_csv_rejects``.
CSV_LINE_NUMBERS = """rejected_lines as (select distinct line from landing_csv_rejects),
free_lines as (
    select line, row_number() over (order by line) as ordinal
    from range(2, (select count(*) from rows) + (select count(*) from rejected_lines) + 2) as t(line)
    where line not in (select line from rejected_lines)
)
"""



def count_outcomes(conn) -> tuple[int, Counter, int]:
    accepted = conn.execute("select count(*) from landing_records where reason is null and not is_blank").fetchone()[0]
    rejected = Counter(dict(conn.execute(
        "select reason, count(*) from landing_records where reason is not null group by 1").fetchall()))
    blank = conn.execute("select count(*) from landing_records where is_blank").fetchone()[0]
    # string_split leaves one empty piece after the final newline: that is not a line of the file.
    if blank and conn.execute("select is_blank from landing_records order by line_number desc limit 1").fetchone()[0]:
        blank -= 1
    return accepted, rejected, blank
