"""Definitions checked against the data already landed, before a build.

The YAML checks (schema.py) cannot know that ``revenu`` is a typo or that ``plan`` holds text: a
trait over them builds, and is null for everyone. Before a build, every event name and event
property a definition reads is looked up in ``marts.profile_events`` (the events traits and
audiences are computed over, one row per accepted message, as built by the last run):

- an event never seen, or a property never seen in the events the definition selects, is a
  warning with the closest names that were seen (``difflib``);
- a number aggregation (sum, avg, min, max) over a property none of whose landed values is a
  number is an error: the trait could only ever be null. A few values that are not numbers among
  numbers are the ``trait_property_values_conform`` check's warning after the build (each is
  taken as null).

Nothing is checked when the warehouse or its marts do not exist yet (a first run). Values reach
SQL as bound parameters only; messages show names and message ids, never property values.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from orchestration.computed.schema import (
    Combination,
    DefinitionError,
    Definitions,
    EventCondition,
    EventFilter,
    Funnel,
    comparisons,
    location,
)
from orchestration.core.warehouse import table_exists

NUMBER_AGGREGATES = {"sum", "avg", "min", "max"}
EXAMPLES = 3  # example message ids in an error
SUGGESTIONS = 3  # closest names in a warning
SHOWN_NAMES = 8  # names listed when none is close


@dataclass(frozen=True)
class Finding:
    """A problem of one definition with the landed data: ``severity`` is ``error`` or ``warning``."""

    severity: str
    definition: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return f"{location(self.file, self.line)}{self.definition}: {self.message}"


class DefinitionProblems(DefinitionError):
    """Definitions that cannot build against the landed data; ``findings`` are the errors (the
    message), ``warnings`` the warnings found with them."""

    def __init__(self, findings: list[Finding], warnings: list[Finding] = ()):
        self.findings, self.warnings = findings, list(warnings)
        super().__init__("\n".join(map(str, findings)))


@dataclass(frozen=True)
class _Read:
    """An event property a definition reads, over the events its filter selects."""

    definition: str
    events: tuple[str, ...]
    message_types: tuple[str, ...]
    path: str
    as_number: bool  # aggregated as a number (a sum, avg, min or max)
    file: str | None
    line: int | None


def _filters(condition) -> list[EventFilter]:
    """The event filters of an audience condition."""
    if isinstance(condition, Combination):
        return [f for part in condition.parts for f in _filters(part)]
    if isinstance(condition, EventCondition):
        return [condition.filter]
    if isinstance(condition, Funnel):
        return [step.filter for step in condition.steps]
    return []  # AudienceCondition, or a comparison of a trait or profile field


def _reads(definition: str, event_filter: EventFilter, file: str | None, line: int | None) -> list[_Read]:
    return [_Read(definition, event_filter.events, event_filter.message_types, c.subject, False,
                  c.file or file, c.line or line)
            for c in comparisons(event_filter.where) if c.subject_kind == "property"]


def _what_definitions_read(definitions: Definitions) -> tuple[list[tuple[str, EventFilter, str | None, int | None]],
                                                               list[_Read]]:
    """(definition, filter, file, line) of every event filter, and every property read."""
    filters, reads = [], []
    for trait in definitions.traits:
        name = f"trait '{trait.name}' (group '{trait.group}')"
        filters.append((name, trait.filter, trait.file, trait.line))
        reads += _reads(name, trait.filter, trait.file, trait.line)
        if trait.value_kind == "property":
            reads.append(_Read(name, trait.filter.events, trait.filter.message_types, trait.value,
                               trait.type in NUMBER_AGGREGATES and trait.value_type == "number", trait.file, trait.line))
    for audience in definitions.audiences:
        name = f"audience '{audience.name}'"
        for event_filter in _filters(audience.condition):
            file, line = event_filter.file or audience.file, event_filter.line or audience.line
            filters.append((name, event_filter, file, line))
            reads += _reads(name, event_filter, file, line)
    return filters, list(dict.fromkeys(reads))


def selects_sql(events: tuple[str, ...], message_types: tuple[str, ...]) -> tuple[str, list]:
    """SQL over marts.profile_events (with ``?`` parameters) true for the events a filter selects."""
    clauses, params = ["true"], []
    if events:
        clauses.append(f"event_name in ({', '.join('?' for _ in events)})")
        params += list(events)
    if message_types:
        clauses.append(f"message_type in ({', '.join('?' for _ in message_types)})")
        params += list(message_types)
    return " and ".join(clauses), params


def _closest(name: str, seen: list[str], prefix: str = "") -> str:
    """The names in ``seen`` closest to ``name`` (each shown after ``prefix``), or some of them."""
    close = difflib.get_close_matches(name, seen, n=SUGGESTIONS, cutoff=0.6)
    if close:
        return "closest seen: " + ", ".join(f"'{prefix}{c}'" for c in close)
    if not seen:
        return "none seen"
    listed = sorted(seen)[:SHOWN_NAMES]
    return "seen: " + ", ".join(f"'{prefix}{c}'" for c in listed) + (", ..." if len(seen) > SHOWN_NAMES else "")


def _json_path(path: str) -> str:
    return f"$.{path}"  # a dotted path of names (schema.PATH): no quoting needed inside it


def check_landed(conn: duckdb.DuckDBPyConnection, definitions: Definitions) -> list[Finding]:
    """The findings of ``definitions`` against ``marts.profile_events`` (errors first); none when
    the table is missing or empty."""
    if not table_exists(conn, "marts", "profile_events"):
        return []
    seen_events = conn.execute("select message_type, event_name, count(*) from marts.profile_events "
                               "group by all").fetchall()
    if not seen_events:
        return []
    findings: list[Finding] = []

    # events never seen (with their message types)
    filters, reads = _what_definitions_read(definitions)
    unseen_filters = set()
    for definition, event_filter, file, line in filters:
        types = set(event_filter.message_types)
        names = sorted({e for t, e, _ in seen_events if e is not None and (not types or t in types)})
        missing = [e for e in event_filter.events if e not in names]
        for event in missing:
            kinds = f" {'/'.join(event_filter.message_types)}" if types else ""
            findings.append(Finding("warning", definition, f"event '{event}' never seen in the landed{kinds} events "
                                    f"({_closest(event, names)})", file, line))
        if event_filter.events and len(missing) == len(event_filter.events):
            unseen_filters.add((event_filter.events, event_filter.message_types))
        if not event_filter.events and types and not any(t in types for t, _, _ in seen_events):
            unseen_filters.add((event_filter.events, event_filter.message_types))

    reads = [r for r in reads if (r.events, r.message_types) not in unseen_filters]  # already said: nothing to read there
    if not reads:
        return findings
    # One scan: per property read, the selected events holding it, and how many of those are numbers.
    columns, params = [], []
    for read in reads:
        selects, select_params = selects_sql(read.events, read.message_types)
        value = "json_extract_string(properties, ?)"
        columns.append(f"count(*) filter (where {selects} and {value} is not null)")
        params += [*select_params, _json_path(read.path)]
        columns.append(f"count(*) filter (where {selects} and try_cast({value} as double) is not null)")
        params += [*select_params, _json_path(read.path)]
        columns.append(f"(list(message_id order by message_id) filter (where {selects} and {value} is not null))"
                       f"[1:{EXAMPLES}]")
        params += [*select_params, _json_path(read.path)]
    counts = conn.execute(f"select {', '.join(columns)} from marts.profile_events", params).fetchone()
    for i, read in enumerate(reads):
        present, numbers, examples = counts[3 * i: 3 * i + 3]
        where = "events" if not (read.events or read.message_types) else (
            " or ".join(f"'{e}'" for e in read.events) or "/".join(read.message_types)) + " events"
        if present == 0:
            parent, _, leaf = read.path.rpartition(".")
            selects, select_params = selects_sql(read.events, read.message_types)
            parent_path = _json_path(parent) if parent else "$"
            keys = [row[0] for row in conn.execute(
                f"select distinct unnest(json_keys(properties, ?)) from marts.profile_events where {selects} "
                f"and json_type(properties, ?) = 'OBJECT'", [parent_path, *select_params, parent_path]).fetchall()]
            findings.append(Finding("warning", read.definition, f"property '{read.path}' never seen in the landed "
                                    f"{where} ({_closest(leaf, keys, f'{parent}.' if parent else '')})", read.file, read.line))
        elif read.as_number and numbers == 0:
            findings.append(Finding("error", read.definition, f"property '{read.path}' is aggregated as a number, but "
                                    f"none of its {present} landed value(s) in {where} is a number (e.g. message(s) "
                                    f"{', '.join(examples)}): read another property, or use a trait type for text "
                                    "(last, most_frequent, unique_count)", read.file, read.line))
    return sorted(findings, key=lambda f: f.severity != "error")


def checked_file(database: Path) -> Path:
    """The warnings of the last check against ``database`` and what they were found for."""
    return database.with_name(database.name + ".definitions_checked.json")


def _checked_for(conn: duckdb.DuckDBPyConnection, definitions_text: str) -> str:
    """What a check's findings follow from: the definitions and the events they were checked against
    (rows, and the newest written or landed: a build rewrites or adds rows, an erasure removes them)."""
    events = None
    if table_exists(conn, "marts", "profile_events"):
        # an older warehouse's profile_events may lack a stamp until its run's migration adds it
        stamps = [column for (column,) in conn.execute(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'profile_events' and column_name in ('updated_at', 'loaded_at') order by 1").fetchall()]
        events = conn.execute(f"select count(*), {''.join(f'max({c}), ' for c in stamps)}1 "
                              "from marts.profile_events").fetchone()
    return hashlib.sha256(f"{definitions_text}\0{events}".encode()).hexdigest()


def check_before_build(database: Path, definitions: Definitions, definitions_text: str = "") -> list[Finding]:
    """Checks ``definitions`` against the warehouse ``database`` when it exists: raises
    DefinitionProblems with the errors, returns the warnings. The scan of every event runs again
    only when the definitions (``definitions_text``) or the events changed since the last check
    that found no error; otherwise that check's warnings are returned (a run with nothing new
    does not pay for a scan that grows with the warehouse)."""
    from orchestration.core.warehouse import connect

    if not database.exists():
        return []
    record = checked_file(database)
    with connect(database, read_only=True) as conn:
        checked_for = _checked_for(conn, definitions_text) if definitions_text else None
        last = json.loads(record.read_text()) if checked_for and record.exists() else {}
        if checked_for and last.get("checked_for") == checked_for:
            return [Finding(**finding) for finding in last["warnings"]]
        findings = check_landed(conn, definitions)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise DefinitionProblems(errors, [f for f in findings if f.severity != "error"])
    if checked_for:
        record.write_text(json.dumps({"checked_for": checked_for, "warnings": [asdict(f) for f in findings]}))
    return findings


def check_definitions_before_build(database: Path, definitions_dir: Path | None = None) -> list[Finding]:
    """Where a build starts (the command line's run, the Spark build): the project's definitions
    checked against ``database``; raises DefinitionError or DefinitionProblems, prints the warnings
    (standard error) and returns them."""
    from orchestration.computed.schema import load_definitions
    from orchestration.core import settings

    definitions_dir = definitions_dir or settings.DEFINITIONS_DIR
    files = [definitions_dir / "traits.yml", definitions_dir / "audiences.yml"]
    definitions = load_definitions(*files)
    text = "\0".join(path.read_text() if path.exists() else "" for path in files)
    try:
        warnings = check_before_build(database, definitions, text)
    except DefinitionProblems as problems:  # its warnings too: each may be one more mistake to fix
        _say_warnings(problems.warnings)
        raise
    _say_warnings(warnings)
    return warnings


def _say_warnings(warnings: list[Finding]) -> None:
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
