"""``identity-warehouse add-source NAME SAMPLE_FILE``: scaffold a new landing source from a sample.

From a sample CSV/TSV (rows with some identifier columns) or JSON-lines event file, it writes what a
source needs so that after one run its identifiers join the identity graph and its events reach
``marts.profile_events``:

- the registration in ``vars: landing_sources`` of ``dbt_project.yml`` (ingestion lands
  ``LANDING_DIR/<name>/`` into ``raw.<name>``; ``int_messages`` takes in ``stg_<name>__events``);
- ``models/staging/<name>/``: the dbt source, the staging model and its YAML, with the identifier
  mapping in SQL (identifier columns become the message's ``user_id``, ``anonymous_id`` or traits
  named after their identifier type, which the identity rules' ``traits.<type>`` sources read);
- a copy of the sample in the landing folder.

Everything it writes is plain dbt and YAML, meant to be read and edited.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.landing.ingestion import EMAIL_COLUMNS, PHONE_COLUMNS, snake_case
from orchestration.landing.sources import FORMATS, parse_landing_sources

# Field names (snake_cased) that say which identifier a field holds, beside the contact-list ones.
USER_ID_FIELDS = ("user_id", "userid", "user", "member_id", "account_id", "login")
ANONYMOUS_ID_FIELDS = ("anonymous_id", "anonymousid", "anon_id", "device_id", "cookie_id", "domain_userid", "visitor_id")
MESSAGE_ID_FIELDS = ("message_id", "messageid", "event_id", "eventid", "record_id")
EVENT_NAME_FIELDS = ("event", "event_name", "event_type", "action", "activity")
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
        for number, line in enumerate(handle):
            if number >= max_lines:
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                for path_ in _flatten_keys(record):
                    seen.setdefault(path_, None)
        return list(seen)


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
                timestamp: str | None = None) -> SourcePlan:
    """Works out the source from its sample: format, fields, identifier mapping, id, event and time fields."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"source name '{name}': use snake_case (letters, digits, _), e.g. {snake_case(name)}")
    fmt = sample_format(sample)
    fields = sample_fields(sample, fmt)
    if not fields:
        raise ValueError(f"{sample}: no header or JSON object found")
    custom = [t for t in identity_types if t not in ("user_id", "anonymous_id", "email", "phone")]
    identifiers = {f: t for f in fields if (t := detect_identifier_type(f, custom))}
    for field_name, identifier_type in (overrides or {}).items():
        if field_name not in fields:
            raise ValueError(f"--identifier {field_name}={identifier_type}: no field '{field_name}' in the sample "
                             f"(fields: {', '.join(fields)})")
        if identifier_type in ("", "none"):
            identifiers.pop(field_name, None)
        else:
            identifiers[field_name] = identifier_type
    if not identifiers:
        raise ValueError(f"{sample}: no identifier field found among {', '.join(fields)}; "
                         "name one with --identifier FIELD=TYPE (e.g. --identifier 'Member Mail=email')")
    by_name = {snake_case(f.split(".")[-1]): f for f in reversed(fields)}
    return SourcePlan(
        name=name,
        format=fmt,
        fields=fields,
        identifiers=identifiers,
        message_id=message_id or next((by_name[n] for n in MESSAGE_ID_FIELDS if n in by_name), None),
        event_name=event_name or next((by_name[n] for n in EVENT_NAME_FIELDS if n in by_name), None),
        timestamp=timestamp or next((by_name[n] for n in PREFERRED_TIMESTAMPS if n in by_name), None)
        or next((f for f in fields if _looks_like_time(f) and f not in identifiers), None),
    )


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
    path = json_path(field_name, fmt).replace("'", "\\'")
    return f"json_get_string('payload', '{path}')"


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
    event_at = ("coalesce({{ parse_timestamp(" + _string(plan.timestamp, fmt) + ") }}, loaded_at)"
                if plan.timestamp else "loaded_at")
    mapping = "\n".join(f"      {f} → {t}" for f, t in plan.identifiers.items())
    return f"""{{#- Generated by `{command}`: edit freely.
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
        'track' as message_type,
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
"""


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
        description: "`track`."
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


def register_source(project_yml: str, plan: SourcePlan) -> str:
    """``dbt_project.yml`` with the source added under ``vars: landing_sources`` (a text edit, so
    every comment stays)."""
    import yaml

    existing = yaml.safe_load(project_yml).get("vars", {}).get("landing_sources") or {}
    if plan.name in existing:
        raise ValueError(f"landing source '{plan.name}' is already registered in dbt_project.yml")
    entry = [f"    {plan.name}:", f"      folder: {plan.name}", f"      format: {plan.format}"]
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
            lines[index + 1:index + 1] = [text + "\n" for text in entry]
            updated = "".join(lines)
            parse_landing_sources(yaml.safe_load(updated)["vars"]["landing_sources"])  # still valid
            return updated
    raise ValueError("dbt_project.yml has no `landing_sources:` under `vars:`; add `  landing_sources: {}` there")


def scaffold(plan: SourcePlan, dbt_project_dir: Path, landing_dir: Path, sample: Path, command: str,
             copy_sample: bool = True) -> list[Path]:
    """Writes the files of the plan; returns them. Refuses to overwrite an existing staging folder."""
    staging = dbt_project_dir / "models" / "staging" / plan.name
    if staging.exists():
        raise ValueError(f"{staging} already exists: remove it or choose another name")
    project_file = dbt_project_dir / "dbt_project.yml"
    updated_project = register_source(project_file.read_text(), plan)
    staging.mkdir(parents=True)
    written = {
        staging / f"_{plan.name}__sources.yml": render_sources_yml(plan),
        staging / f"_{plan.name}__models.yml": render_models_yml(plan),
        staging / f"stg_{plan.name}__events.sql": render_staging_sql(plan, command),
    }
    for path, text in written.items():
        path.write_text(text)
    project_file.write_text(updated_project)
    paths = [project_file, *written]
    if copy_sample:
        target = landing_dir / plan.name / sample.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample, target)
        paths.append(target)
    return paths
