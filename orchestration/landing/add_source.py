"""``identity-warehouse add-source NAME SAMPLE_FILE``: scaffold a new landing source from a sample.

From a sample CSV/TSV (rows with some identifier columns) or JSON-lines event file, it writes what a
source needs so that after one run its identifiers join the identity graph and its events reach
``marts.profile_events``:

- the registration in ``vars: landing_sources`` of ``dbt_project.yml`` (ingestion lands
  ``LANDING_DIR/<name>/`` into ``raw.<name>``; ``int_messages`` takes in ``stg_<name>__events``);
- ``models/staging/<name>/``: the dbt source, the staging model and its YAML, with the identifier
  mapping in SQL (identifier columns become the message's ``user_id``, ``anonymous_id`` or traits
  named after their identifier type, which the identity rules' ``traits.<type>`` sources read);
- a copy of the sample in the landing folder, unless that folder is inside the repository (the
  default ``seeds/``): a real export never lands one ``git add`` away from a commit.

The sample is read (field names, a few thousand records to choose the event-name field, find page
views and check identifier paths), never written into the project. Everything it writes is plain
dbt and YAML, meant to be read and edited; ``--update`` rewrites it while the staging model's
checksum line says it was not edited.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.landing.ingestion import EMAIL_COLUMNS, PHONE_COLUMNS, snake_case
from orchestration.landing.sources import (
    FORMATS,
    WILDCARD,
    canonical_field,
    column_and_rest,
    parse_landing_sources,
    path_segments,
    split_field_path,
)

# Field names (snake_cased) that say which identifier a field holds, beside the contact-list ones.
USER_ID_FIELDS = ("user_id", "userid", "user", "member_id", "account_id", "login")
ANONYMOUS_ID_FIELDS = ("anonymous_id", "anonymousid", "anon_id", "device_id", "cookie_id", "domain_userid", "visitor_id")
# A candidate is taken only when it is no counter: Amplitude's `event_id` counts a device's events
# (1, 2, ...); its `$insert_id` (the SDK's de-duplication key) and `uuid` are unique.
MESSAGE_ID_FIELDS = ("message_id", "messageid", "event_id", "eventid", "record_id", "insert_id", "uuid")
EVENT_NAME_FIELDS = ("event", "event_name", "event_type", "action", "activity")
# Event names that say only what kind of record it is, not what happened (Snowplow's `unstruct` is
# any self-describing event, `struct` a structured one, `event` its name for those).
GENERIC_EVENT_NAMES = {"unstruct", "struct", "event", "track", "custom", "custom_event", "other", "unknown"}
# Values of an event-type field that mean a page or screen view (Snowplow `event = page_view`), and
# the Segment message types they become; every other record is a `track`.
# Compared as letters and digits only, after a leading "[Vendor] " (Amplitude's `[Amplitude] Page
# Viewed`, PostHog's `$pageview`, Segment's `Page Viewed`).
VIEW_EVENT_TYPES = {"pageview": "page", "pageviewed": "page", "page": "page", "screenview": "screen",
                    "screenviewed": "screen", "screen": "screen"}
MESSAGE_TYPES = ("track", "page", "screen")
# What names a page or screen view (its `name` in the Segment spec), when the sample has one.
VIEW_NAME_FIELDS = ("page_title", "page_name", "screen_name", "title")
SAMPLE_ROWS = 2_000  # records of the sample read to choose fields and check paths
TIMESTAMP_HINTS = ("timestamp", "tstamp", "_at", "_time", "date")
# Preferred time fields, before any other that looks like a time (Snowplow's derived_tstamp is
# clock-skew corrected; etl_tstamp is not when it happened).
PREFERRED_TIMESTAMPS = ("timestamp", "derived_tstamp", "event_time", "event_at", "occurred_at", "created_at")


@dataclass
class SourcePlan:
    """What the scaffold will write, worked out from the sample (and the user's overrides)."""

    name: str
    format: str
    fields: list[str]  # field paths: CSV headers, or JSON keys (nested ones dotted)
    identifiers: dict[str, str] = field(default_factory=dict)  # field → identifier type
    message_id: str | None = None
    event_name: str | None = None
    timestamp: str | None = None
    event_name_reason: str = ""  # why this event-name field (printed by the command)
    type_field: str | None = None  # field whose values map to message types
    message_types: dict[str, str] = field(default_factory=dict)  # its value → page | screen (else track)
    view_name: str | None = None  # field naming a page or screen view (else the event name)


def sample_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    for fmt, suffixes in FORMATS.items():
        if any(name.endswith(suffix.removesuffix(".gz")) for suffix in suffixes):
            return fmt
    raise ValueError(f"{path.name}: cannot tell the format (use .csv, .tsv or .jsonl)")


def sample_fields(path: Path, fmt: str, max_lines: int = 200) -> list[str]:
    """Field names of a sample: the CSV/TSV header, or the keys of its first JSON lines (nested
    objects as dotted paths, in the order first seen)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        if fmt in ("csv", "tsv"):
            header = next(csv.reader(handle, delimiter="\t" if fmt == "tsv" else ","), [])
            return [column for column in header if column.strip()]
        seen: dict[str, None] = {}
        for record in _json_objects(itertools.islice(handle, max_lines)):
            for path_ in _flatten_keys(record):
                seen.setdefault(path_, None)
        return list(seen)


def _json_objects(lines: Iterable[str]) -> Iterator[dict]:
    """The JSON objects among ``lines`` (other lines of a sample are passed over)."""
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def sample_rows(path: Path, fmt: str, max_rows: int = SAMPLE_ROWS) -> list[dict]:
    """The first records of a sample: CSV/TSV rows keyed by the header (text), or JSON objects. Read
    to choose fields and check paths; nothing of it is written anywhere."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        records = (csv.DictReader(handle, delimiter="\t" if fmt == "tsv" else ",") if fmt in ("csv", "tsv")
                   else _json_objects(handle))
        return list(itertools.islice(records, max_rows))


def _descend(values: list, segment) -> list:
    found = []
    for value in values:
        if segment is WILDCARD:
            found += value if isinstance(value, list) else []
        elif isinstance(segment, int):
            found += [value[segment]] if isinstance(value, list) and segment < len(value) else []
        elif isinstance(value, dict) and segment in value:
            found.append(value[segment])
    return found


def _json_text(value):
    """A CSV cell's JSON (None when it holds none)."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return None


def field_values(record: dict, field_name: str, fmt: str, columns: list[str]) -> list:
    """The non-null values at a field of one record: a JSON path, or a CSV column then a path into
    the JSON its cell holds (as the staging model reads them: JSON held as text deeper is not read)."""
    if fmt == "jsonl":
        try:
            segments = path_segments(field_name)
        except ValueError:
            segments = [field_name]
        values = [record]
    else:
        column, rest = column_and_rest(field_name, columns)
        values = [record.get(column) if rest is None else _json_text(record.get(column))]
        segments = path_segments(rest.removeprefix(".")) if rest else []
    for segment in segments:
        values = _descend(values, segment)
    return [v for v in values if v not in (None, "")]


def _keys_at(rows: list[dict], field_name: str, fmt: str, columns: list[str]) -> list[str]:
    """What a path that found nothing could have meant: the keys at its deepest point that exists."""
    parts = re.split(r"(?=\.|\[)", field_name)
    for end in range(len(parts) - 1, 0, -1):
        prefix = "".join(parts[:end])
        try:
            found = [v for row in rows for v in field_values(row, prefix, fmt, columns)]
        except ValueError:
            continue
        keys: dict[str, None] = {}
        for value in found:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    continue
            for item in (value if isinstance(value, list) else [value]):
                if isinstance(item, dict):
                    keys.update(dict.fromkeys(item))
        if keys or found:
            return [f"{prefix}: " + (", ".join(keys) if keys else "(no object there)")]
    return []


def check_field(rows: list[dict], field_name: str, fmt: str, columns: list[str], option: str) -> str:
    """The field as the registration writes it, if the sample has it: a field of its header or
    keys, or a path with a value in at least one record; else a ValueError that says what the sample
    holds there."""
    if fmt == "jsonl":
        head = re.split(r"[.\[]", field_name, maxsplit=1)[0]
        known = field_name in columns or any(re.split(r"[.\[]", c, maxsplit=1)[0] == head for c in columns)
    else:
        head = column_and_rest(field_name, columns)[0]
        known = head in columns
        if not known and not field_name.startswith('"'):
            head = re.split(r"[.\[]", field_name, maxsplit=1)[0]
    if not known:
        raise ValueError(f"{option}: no field '{head}' in the sample (fields: {', '.join(columns)})")
    if field_name.count("[*]") > 1:
        raise ValueError(f"{option}: one [*] per path (name the others' index, e.g. [0])")
    if field_name not in columns and not any(field_values(row, field_name, fmt, columns) for row in rows):
        hints = _keys_at(rows, field_name, fmt, columns)
        raise ValueError(f"{option}: no value at '{field_name}' in the sample"
                         + (f" (keys there: {'; '.join(hints)})" if hints else ""))
    return canonical_field(field_name, fmt, columns)


def _flatten_keys(record: dict, prefix: str = "", depth: int = 0) -> list[str]:
    keys = []
    for key, value in record.items():
        path_ = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < 2:
            keys += _flatten_keys(value, path_ + ".", depth + 1)
        else:
            keys.append(path_)
    return keys


def detect_identifier_type(field_name: str, custom_types: list[str] = ()) -> str | None:
    """The identifier type a field name suggests (its last path segment, snake_cased), or None."""
    name = snake_case(field_name.split(".")[-1])
    if name in custom_types:
        return name
    if name in EMAIL_COLUMNS or name.endswith("_email") or name.startswith("email_"):
        return "email"
    if name in PHONE_COLUMNS or name.endswith(("_phone", "_mobile")) or name.startswith("phone_"):
        return "phone"
    if name in USER_ID_FIELDS:
        return "user_id"
    if name in ANONYMOUS_ID_FIELDS:
        return "anonymous_id"
    return None


def plan_source(name: str, sample: Path, identity_types: list[str], overrides: dict[str, str] | None = None,
                message_id: str | None = None, event_name: str | None = None,
                timestamp: str | None = None, type_field: str | None = None,
                message_types: dict[str, str] | None = None) -> SourcePlan:
    """Works out the source from its sample: format, fields, identifier mapping, id, event and time
    fields, and which records are page or screen views."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"source name '{name}': use snake_case (letters, digits, _), e.g. {snake_case(name)}")
    fmt = sample_format(sample)
    fields = sample_fields(sample, fmt)
    if not fields:
        raise ValueError(f"{sample}: no header or JSON object found")
    rows = sample_rows(sample, fmt)
    custom = [t for t in identity_types if t not in ("user_id", "anonymous_id", "email", "phone")]
    identifiers = {f: t for f in fields if (t := detect_identifier_type(f, custom))}
    for field_name, identifier_type in (overrides or {}).items():
        canonical = check_field(rows, field_name, fmt, fields, f"--identifier {field_name}={identifier_type}")
        if identifier_type in ("", "none"):
            identifiers.pop(canonical, None)
        else:
            identifiers[canonical] = identifier_type
    if not identifiers:
        raise ValueError(f"{sample}: no identifier field found among {', '.join(fields)}; "
                         "name one with --identifier FIELD=TYPE (e.g. --identifier 'Member Mail=email')")
    for option, given in (("--message-id", message_id), ("--event-name", event_name), ("--timestamp", timestamp),
                          ("--type-field", type_field)):
        if given:
            check_field(rows, given, fmt, fields, f"{option} {given}")
    by_name = {snake_case(f.split(".")[-1]): f for f in reversed(fields)}
    candidates = [by_name[n] for n in EVENT_NAME_FIELDS if n in by_name]
    if event_name:
        reason = "named by --event-name"
    else:
        event_name, reason = choose_event_name(candidates, rows, fmt, fields)
    if message_types:
        wrong = {v: t for v, t in message_types.items() if t not in MESSAGE_TYPES}
        if wrong:
            raise ValueError(f"--message-type {', '.join(f'{v}={t}' for v, t in wrong.items())}: a message type is "
                             f"one of {', '.join(MESSAGE_TYPES)}")
        type_field = type_field or event_name
    else:
        type_field, message_types = detect_view_events(([type_field] if type_field else candidates), rows, fmt, fields)
    return SourcePlan(
        name=name,
        format=fmt,
        fields=fields,
        identifiers=identifiers,
        message_id=message_id or choose_message_id([by_name[n] for n in MESSAGE_ID_FIELDS if n in by_name],
                                                    rows, fmt, fields),
        event_name=event_name,
        timestamp=timestamp or next((by_name[n] for n in PREFERRED_TIMESTAMPS if n in by_name), None)
        or next((f for f in fields if _looks_like_time(f) and f not in identifiers), None),
        event_name_reason=reason,
        type_field=type_field if message_types else None,
        message_types=message_types or {},
        view_name=next((by_name[n] for n in VIEW_NAME_FIELDS if n in by_name), None) if message_types else None,
    )


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def choose_event_name(candidates: list[str], rows: list[dict], fmt: str, fields: list[str]) -> tuple[str | None, str]:
    """The event-name field that tells most about what happened: the most distinct names that are not
    generic (``unstruct``, ``struct``, ``event``); then the fewest records with a generic name; then
    the usual order (``event``, ``event_name``, ...). Returns it and why, for the command to print."""
    if not candidates:
        return None, "no event-name field (event, event_name, action, ...): the source's name"
    stats = {}
    for candidate in candidates:
        names = Counter(_text(v) for row in rows for v in field_values(row, candidate, fmt, fields)[:1])
        specific = {n for n in names if n.strip().lower() not in GENERIC_EVENT_NAMES}
        generic = sum(c for n, c in names.items() if n not in specific)
        stats[candidate] = (len(specific), -generic, names)
    chosen = max(candidates, key=lambda c: stats[c][:2])  # max keeps the first of equals: the usual order

    def described(candidate: str) -> str:
        specific, generic, names = stats[candidate]
        total = sum(names.values())
        text = f"{candidate}: {specific} specific name{'s' if specific != 1 else ''}"
        if -generic and total:
            common = names.most_common(1)[0][0]
            text += f", {round(100 * -generic / total)}% generic ('{common}')" if common.lower() in GENERIC_EVENT_NAMES \
                else f", {round(100 * -generic / total)}% generic"
        return text

    others = [described(c) for c in candidates if c != chosen]
    return chosen, described(chosen) + (f" (over {'; '.join(others)})" if others else "") + \
        f", in {len(rows)} sample records"


def detect_view_events(candidates: list[str], rows: list[dict], fmt: str,
                       fields: list[str]) -> tuple[str | None, dict[str, str]]:
    """The field whose values say a record is a page or screen view (Snowplow ``event = page_view``)
    and those values' message types; (None, {}) when no field says so."""
    for candidate in candidates:
        seen = {_text(v) for row in rows for v in field_values(row, candidate, fmt, fields)[:1]}
        views = {value: VIEW_EVENT_TYPES[_view_key(value)] for value in sorted(seen)
                 if _view_key(value) in VIEW_EVENT_TYPES}
        if views:
            return candidate, views
    return None, {}


def _view_key(value: str) -> str:
    """An event type as compared with VIEW_EVENT_TYPES: without a leading ``[Vendor]``, letters and
    digits only, lower case (``[Amplitude] Page Viewed`` → ``pageviewed``, ``page_view`` → ``pageview``)."""
    return re.sub(r"[^0-9a-z]", "", re.sub(r"^\s*\[[^\]]*\]", "", value).lower())


def choose_message_id(candidates: list[str], rows: list[dict], fmt: str, fields: list[str]) -> str | None:
    """The first message-id field that is no counter: a field whose values in the sample repeat and
    are whole numbers, or mostly repeat, would make de-duplication drop real events (a re-delivered
    record repeats a real id). None: the id is derived from the content."""
    for candidate in candidates:
        values = [_text(v) for row in rows for v in field_values(row, candidate, fmt, fields)[:1]]
        distinct = len(set(values))
        repeats = distinct < len(values)
        if values and not (repeats and (all(v.strip().isdigit() for v in values) or 2 * distinct < len(values))):
            return candidate
    return None


def _looks_like_time(field_name: str) -> bool:
    name = snake_case(field_name.split(".")[-1])
    return any(name == hint.strip("_") or name.endswith(hint) for hint in TIMESTAMP_HINTS)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def json_path(field_name: str, fmt: str) -> str:
    """The JSON path of a field in ``payload``: CSV headers are single keys (quoted when needed),
    JSON fields dotted paths."""
    parts = [field_name] if fmt in ("csv", "tsv") else field_name.split(".")
    return "$" + "".join(f".{p}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) else f'."{p}"' for p in parts)


def _string(field_name: str, fmt: str) -> str:
    """The Jinja call that reads a field's text from ``payload``: a path into a CSV cell's JSON reads
    the cell, then the path in it; under ``[*]`` the first non-null value."""
    cell, inner = split_field_path(field_name, fmt)

    def literal(path: str) -> str:
        return "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"

    if inner is not None:
        return f"json_first_string(json_get_string('payload', {literal(cell)}), {literal(inner)})"
    if "[*]" in cell:
        return f"json_first_string('payload', {literal(cell)})"
    return f"json_get_string('payload', {literal(cell)})"


CHECKSUM_LINE = "{{#- add-source {checksum}: --update rewrites this file while its text after this line is unchanged -#}}\n"
_CHECKSUM = re.compile(r"\{#- add-source (sha256:[0-9a-f]{64}): [^\n]*-#\}\n")


def with_checksum(text: str) -> str:
    """A generated file's text under a first line with the checksum of the rest."""
    return CHECKSUM_LINE.format(checksum="sha256:" + hashlib.sha256(text.encode()).hexdigest()) + text


def edited_since_generated(text: str) -> bool:
    """True when a generated file was changed since add-source wrote it (or has no checksum line)."""
    match = _CHECKSUM.match(text)
    return not match or match.group(1) != "sha256:" + hashlib.sha256(text[match.end():].encode()).hexdigest()


def _sql_value(value: str) -> str:
    # a closed set of characters (none is a quote, a backslash or Jinja's braces) inside quotes
    if not re.fullmatch(r"[A-Za-z0-9_ .:/$()\[\]-]{1,100}", value):
        raise ValueError(f"--message-type {value!r}: a value of letters, digits, spaces and _ . : / $ ( ) [ ] -")
    return f"'{value}'"


def render_staging_sql(plan: SourcePlan, command: str) -> str:
    fmt = plan.format
    by_type: dict[str, list[str]] = {}
    for field_name, identifier_type in plan.identifiers.items():
        by_type.setdefault(identifier_type, []).append(field_name)

    def first_of(fields: list[str]) -> str:
        values = [_string(f, fmt) for f in fields]
        return values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"

    def id_column(identifier_type: str) -> str:
        if identifier_type in by_type:
            return "{{ " + first_of(by_type[identifier_type]) + " }}"
        return "cast(null as {{ dbt.type_string() }})"

    trait_types = [t for t in by_type if t not in ("user_id", "anonymous_id")]
    traits = ("{{ json_object_of([\n"
              + "".join(f"            ('{t}', {first_of(by_type[t])}),\n" for t in trait_types)
              + "        ]) }}") if trait_types else "cast(null as {{ type_json() }})"
    event_name = ("{{ " + _string(plan.event_name, fmt) + " }}") if plan.event_name else f"'{plan.name}'"
    if plan.message_types:
        whens = "".join(f"\n            when {_sql_value(v)} then '{t}'" for v, t in plan.message_types.items())
        message_type = ("case {{ " + _string(plan.type_field, fmt) + " }}" + whens
                        + "\n            else 'track'\n        end")
        if plan.view_name:  # a page or screen view is named by its title, as a Segment `page` is
            views = ", ".join(_sql_value(v) for v, t in plan.message_types.items() if t != "track")
            event_name = (f"coalesce(\n            case when {{{{ {_string(plan.type_field, fmt)} }}}} in ({views})"
                          f" then {{{{ {_string(plan.view_name, fmt)} }}}} end,\n            {event_name}\n        )")
    else:
        message_type = "'track'"
    event_at = ("coalesce({{ parse_timestamp(" + _string(plan.timestamp, fmt) + ") }}, loaded_at)"
                if plan.timestamp else "loaded_at")
    mapping = "\n".join(f"      {f} → {t}" for f, t in plan.identifiers.items())
    return with_checksum(f"""{{#- Generated by `{command}`: edit freely
    (once edited, `add-source --update` leaves this file alone).
    {plan.name} records ({fmt}) as messages of the warehouse. Identifier mapping (field → type):
{mapping}
    user_id and anonymous_id are columns; other identifier types are traits named after the type,
    which the identity rules read as `traits.<type>` (vars: identity_rules in dbt_project.yml). -#}}
with

source as (

    select * from {{{{ source('{plan.name}', '{plan.name}') }}}}

),

renamed as (

    select
        message_id,
        {message_type} as message_type,
        {event_name} as event_name,
        {event_at} as event_at,
        {id_column('user_id')} as user_id,
        {id_column('anonymous_id')} as anonymous_id,
        {traits} as traits,
        payload as properties,
        cast(null as {{{{ type_json() }}}}) as context,
        payload,
        load_id,
        file_path,
        line_number,
        loaded_at

    from source

),

deduplicated as (

    {{{{ deduplicate('renamed', partition_by='message_id', order_by='loaded_at, file_path, line_number') }}}}

)

select * from deduplicated
""")


def _yaml_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def render_sources_yml(plan: SourcePlan) -> str:
    return f"""version: 2

sources:
  - name: {plan.name}
    description: >
      {plan.name} records ({plan.format}) landed from `LANDING_DIR/{plan.name}/**` by the ingestion
      asset (`vars: landing_sources` in dbt_project.yml).
    schema: raw
    tables:
      - name: {plan.name}
        description: One row per accepted line or row; the same message id can arrive twice.
        columns:
          - name: message_id
            description: {_yaml_text((f"`{plan.message_id}`, else derived" if plan.message_id else "Derived")
                                     + f" (`{plan.name}:<md5 of the record>`).")}
          - name: message_id_is_derived
            description: True when the id was derived from the content.
          - name: payload
            description: The record as received (JSON; a CSV row keyed by its header).
          - name: load_id
            description: The load of the landing file (`raw.loaded_files.load_id`).
          - name: file_path
            description: The landing file, relative to the landing folder.
          - name: line_number
            description: The line of the landing file.
          - name: loaded_at
            description: When the file was loaded (UTC).
"""


def render_models_yml(plan: SourcePlan) -> str:
    mapping = ", ".join(f"`{f}` → {t}" for f, t in plan.identifiers.items())
    return f"""version: 2

models:
  - name: stg_{plan.name}__events
    description: >
      {plan.name} records as messages, one row per message id (the first loaded wins).
      Identifiers: {mapping.replace(": ", " ")}.
    columns:
      - name: message_id
        description: The record's message id.
        data_tests: [unique, not_null]
      - name: message_type
        description: {_yaml_text(("`" + "`, `".join(f"{t}` when `{plan.type_field}` is `{v}" for v, t in plan.message_types.items()) + "`, else `track`.") if plan.message_types else "`track`.")}
      - name: event_name
        description: {_yaml_text(f"`{plan.event_name or plan.name}`." if plan.event_name else f"'{plan.name}'.")}
      - name: event_at
        description: {_yaml_text(f"`{plan.timestamp}`, else the load time." if plan.timestamp else "The load time.")}
        data_tests: [not_null]
      - name: user_id
        description: The user id, if the source has one.
      - name: anonymous_id
        description: The anonymous (device, cookie) id, if the source has one.
      - name: traits
        description: Identifiers other than user and anonymous ids, keyed by identifier type (JSON).
      - name: properties
        description: The whole record (JSON).
      - name: context
        description: Not used by this source.
      - name: payload
        description: The record as received (JSON).
      - name: load_id
        description: The load of the landing file.
      - name: file_path
        description: The landing file, relative to the landing folder.
      - name: line_number
        description: The line of the landing file.
      - name: loaded_at
        description: When the file was loaded (UTC).
"""


def register_source(project_yml: str, plan: SourcePlan, update: bool = False) -> str:
    """``dbt_project.yml`` with the source added under ``vars: landing_sources`` (a text edit, so
    every comment stays); with ``update``, its entry there replaced (keeping its folder)."""
    import yaml

    existing = yaml.safe_load(project_yml).get("vars", {}).get("landing_sources") or {}
    if plan.name in existing and not update:
        raise ValueError(f"landing source '{plan.name}' is already registered in dbt_project.yml "
                         "(--update regenerates its mapping)")
    folder = (existing.get(plan.name) or {}).get("folder", plan.name)
    entry = [f"    {plan.name}:", f"      folder: {folder}", f"      format: {plan.format}"]
    if plan.message_id:
        entry.append(f"      message_id: {json.dumps(plan.message_id)}")
    if plan.identifiers:
        # where its records carry identifiers: the privacy screen reads them at the landing door
        entry.append("      identifiers:")
        entry += [f"        {json.dumps(field)}: {json.dumps(kind)}" for field, kind in plan.identifiers.items()]
    lines = project_yml.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.rstrip() in ("  landing_sources:", "  landing_sources: {}"):
            lines[index] = "  landing_sources:\n"
            at = index + 1
            if plan.name in existing:  # the entry's lines: its key, then everything indented deeper
                start = next(i for i in range(at, len(lines)) if lines[i].rstrip() == f"    {plan.name}:")
                end = start + 1
                while end < len(lines) and (not lines[end].strip() or lines[end].startswith("      ")):
                    end += 1
                while end > start + 1 and not lines[end - 1].strip():
                    end -= 1
                del lines[start:end]
                at = start
            lines[at:at] = [text + "\n" for text in entry]
            updated = "".join(lines)
            parse_landing_sources(yaml.safe_load(updated)["vars"]["landing_sources"])  # still valid
            return updated
    raise ValueError("dbt_project.yml has no `landing_sources:` under `vars:`; add `  landing_sources: {}` there")


def sample_copy_target(plan: SourcePlan, landing_dir: Path, sample: Path, repository: Path) -> Path | None:
    """Where the sample goes so that the next run lands it: ``LANDING_DIR/<name>/``, unless that is
    inside the repository (the default ``seeds/``), where a real export is one ``git add`` away from
    a commit: then nowhere (None)."""
    target = landing_dir / plan.name / sample.name
    if target.resolve().is_relative_to(repository.resolve()):
        return None
    return target


def scaffold(plan: SourcePlan, dbt_project_dir: Path, landing_dir: Path, sample: Path, command: str,
             copy_sample: bool = True, update: bool = False, repository: Path | None = None) -> list[Path]:
    """Writes the files of the plan; returns them. An existing source is rewritten only with
    ``update``, and never when its staging model was edited since add-source wrote it. The sample is
    copied into the landing folder only outside the ``repository`` (default: the project's)."""
    from orchestration.core import settings

    staging = dbt_project_dir / "models" / "staging" / plan.name
    model = staging / f"stg_{plan.name}__events.sql"
    if staging.exists() and not update:
        raise ValueError(f"{staging} already exists: --update regenerates the source's mapping (it keeps a "
                         "staging model you edited), or choose another name")
    if update and model.exists() and edited_since_generated(model.read_text()):
        raise ValueError(f"{model} was edited since add-source wrote it (its checksum line no longer matches): "
                         "change the mapping there, or remove the file to have --update write it again")
    project_file = dbt_project_dir / "dbt_project.yml"
    updated_project = register_source(project_file.read_text(), plan, update=update)
    staging.mkdir(parents=True, exist_ok=True)
    written = {
        staging / f"_{plan.name}__sources.yml": render_sources_yml(plan),
        staging / f"_{plan.name}__models.yml": render_models_yml(plan),
        model: render_staging_sql(plan, command),
    }
    for path, text in written.items():
        path.write_text(text)
    project_file.write_text(updated_project)
    paths = [project_file, *written]
    target = sample_copy_target(plan, landing_dir, sample, repository or settings.PROJECT_ROOT)
    if copy_sample and target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample, target)
        paths.append(target)
    return paths
