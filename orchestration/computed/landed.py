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
    return _check(conn, definitions)[0]


def _check(conn: duckdb.DuckDBPyConnection, definitions: Definitions, earlier: dict | None = None
           ) -> tuple[list[Finding], dict]:
    """check_landed's findings, and the tally they follow from: the events seen and, per property
    read, how many selected events hold it, how many of those are numbers, and example message ids.
    With ``earlier`` (the record of a check before: its ``tally``, ``warnings`` and ``events``, the
    newest load it saw), only the events loaded since are read: events are only ever added to a
    tally (the caller starts over when some are gone), so what a check before tallied plus what was
    loaded since is what a scan of every event would tally."""
    if not table_exists(conn, "marts", "profile_events"):
        return [], {}
    filters, reads = _what_definitions_read(definitions)
    if earlier:
        tally = _merged(earlier["tally"], _tally(conn, reads, "loaded_at > ?", [earlier["events"]["loaded_at"]]))
    else:
        tally = _tally(conn, reads)
    seen_events = [tuple(pair) for pair in tally["events"]]
    if not seen_events:
        return [], tally
    findings: list[Finding] = []

    # events never seen (with their message types)
    unseen_filters = set()
    for definition, event_filter, file, line in filters:
        types = set(event_filter.message_types)
        names = sorted({e for t, e in seen_events if e is not None and (not types or t in types)})
        missing = [e for e in event_filter.events if e not in names]
        for event in missing:
            kinds = f" {'/'.join(event_filter.message_types)}" if types else ""
            findings.append(Finding("warning", definition, f"event '{event}' never seen in the landed{kinds} events "
                                    f"({_closest(event, names)})", file, line))
        if event_filter.events and len(missing) == len(event_filter.events):
            unseen_filters.add((event_filter.events, event_filter.message_types))
        if not event_filter.events and types and not any(t in types for t, _ in seen_events):
            unseen_filters.add((event_filter.events, event_filter.message_types))

    earlier_warnings = [Finding(**finding) for finding in (earlier or {}).get("warnings", [])]
    for read in reads:
        if (read.events, read.message_types) in unseen_filters:  # already said: nothing to read there
            continue
        present, numbers, examples = tally["reads"][_read_key(read)]
        where = "events" if not (read.events or read.message_types) else (
            " or ".join(f"'{e}'" for e in read.events) or "/".join(read.message_types)) + " events"
        if present == 0:
            said = f"property '{read.path}' never seen in the landed {where} ("
            # still unseen since a check before: its words (the names seen beside it) stand
            findings.append(next((w for w in earlier_warnings if (w.definition, w.file, w.line) == (
                read.definition, read.file, read.line) and w.message.startswith(said)), None)
                or Finding("warning", read.definition, said + _seen_beside(conn, read) + ")", read.file, read.line))
        elif read.as_number and numbers == 0:
            findings.append(Finding("error", read.definition, f"property '{read.path}' is aggregated as a number, but "
                                    f"none of its {present} landed value(s) in {where} is a number (e.g. message(s) "
                                    f"{', '.join(examples)}): read another property, or use a trait type for text "
                                    "(last, most_frequent, unique_count)", read.file, read.line))
    return sorted(findings, key=lambda f: f.severity != "error"), tally


def _read_key(read: _Read) -> str:
    return json.dumps([read.definition, read.events, read.message_types, read.path, read.as_number, read.file,
                       read.line])


def _tally(conn: duckdb.DuckDBPyConnection, reads: list[_Read], where: str = "true", where_params: tuple = ()) -> dict:
    """One scan of the events ``where`` selects (SQL over marts.profile_events, bound parameters):
    the (message type, event name) pairs seen and, per property read, [holding it, of those numbers,
    examples]."""
    events = conn.execute(f"select distinct message_type, event_name from marts.profile_events where {where} "
                          "order by all", list(where_params)).fetchall()
    columns, params = [], []
    for read in reads:
        selects, select_params = selects_sql(read.events, read.message_types)
        value = "json_extract_string(properties, ?)"
        columns.append(f"count(*) filter (where {selects} and {value} is not null)")
        params += [*select_params, _json_path(read.path)]
        columns.append(f"count(*) filter (where {selects} and try_cast({value} as double) is not null)")
        params += [*select_params, _json_path(read.path)]
        columns.append(f"coalesce((list(message_id order by message_id) filter (where {selects} and {value} "
                       f"is not null))[1:{EXAMPLES}], [])")
        params += [*select_params, _json_path(read.path)]
    counts = conn.execute(f"select {', '.join(columns) or '1'} from marts.profile_events where {where}",
                          params + list(where_params)).fetchone() if reads else ()
    return {"events": [list(pair) for pair in events],
            "reads": {_read_key(read): [counts[3 * i], counts[3 * i + 1], list(counts[3 * i + 2])]
                      for i, read in enumerate(reads)}}


def _merged(earlier: dict, added: dict) -> dict:
    """A tally of the events of both: the earlier events and those added since."""
    events = sorted({tuple(pair) for pair in earlier["events"] + added["events"]}, key=lambda p: tuple(map(str, p)))
    reads = {}
    for key, (present, numbers, examples) in added["reads"].items():
        before = earlier["reads"].get(key, [0, 0, []])
        reads[key] = [before[0] + present, before[1] + numbers, sorted(set(before[2]) | set(examples))[:EXAMPLES]]
    return {"events": [list(pair) for pair in events], "reads": reads}


def _seen_beside(conn: duckdb.DuckDBPyConnection, read: _Read) -> str:
    """The names seen beside a property never seen (at its parent path), the closest first."""
    parent, _, leaf = read.path.rpartition(".")
    selects, select_params = selects_sql(read.events, read.message_types)
    parent_path = _json_path(parent) if parent else "$"
    keys = [row[0] for row in conn.execute(
        f"select distinct unnest(json_keys(properties, ?)) from marts.profile_events where {selects} "
        f"and json_type(properties, ?) = 'OBJECT'", [parent_path, *select_params, parent_path]).fetchall()]
    return _closest(leaf, keys, f"{parent}." if parent else "")


def checked_file(database: Path) -> Path:
    """The warnings of the last check against ``database`` and what they were found for."""
    return database.with_name(database.name + ".definitions_checked.json")


def _events_state(conn: duckdb.DuckDBPyConnection) -> dict | None:
    """How many events there are, and the newest written and loaded (a build rewrites or adds rows,
    an erasure removes them); None without the table or (an older warehouse, before its run's
    migration) its stamps."""
    if not table_exists(conn, "marts", "profile_events"):
        return None
    stamps = {column for (column,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'marts' "
        "and table_name = 'profile_events' and column_name in ('updated_at', 'loaded_at')").fetchall()}
    if stamps != {"updated_at", "loaded_at"}:
        return {"rows": conn.execute("select count(*) from marts.profile_events").fetchone()[0]}
    rows, updated_at, loaded_at = conn.execute(
        "select count(*), max(updated_at), max(loaded_at) from marts.profile_events").fetchone()
    return {"rows": rows, "updated_at": str(updated_at), "loaded_at": str(loaded_at) if loaded_at else None}


def _only_loaded_since(conn: duckdb.DuckDBPyConnection, then: dict | None, now: dict | None) -> bool:
    """Whether the events now are those of ``then`` and the ones loaded since: none gone (an erasure,
    a contact record dropped) and none replaced by an earlier copy."""
    if not then or not now or not then.get("loaded_at") or "loaded_at" not in now:
        return False
    loaded = conn.execute("select count(*) from marts.profile_events where loaded_at > ?",
                          [then["loaded_at"]]).fetchone()[0]
    return now["rows"] == then["rows"] + loaded


def check_before_build(database: Path, definitions: Definitions, definitions_text: str = "") -> list[Finding]:
    """Checks ``definitions`` against the warehouse ``database`` when it exists: raises
    DefinitionProblems with the errors, returns the warnings. Nothing is read again when neither the
    definitions (``definitions_text``) nor the events changed since the last check that found no
    error (its warnings are returned); when only events were loaded since, only those are read; else
    every event (a run with nothing new, or a little new, does not pay for a scan that grows with the
    warehouse)."""
    from orchestration.core.warehouse import connect

    if not database.exists():
        return []
    record = checked_file(database)
    definitions_hash = hashlib.sha256(definitions_text.encode()).hexdigest() if definitions_text else None
    with connect(database, read_only=True) as conn:
        events = _events_state(conn)
        last = json.loads(record.read_text()) if definitions_hash and record.exists() else {}
        same_definitions = definitions_hash is not None and last.get("definitions") == definitions_hash
        if same_definitions and last.get("events") == events:
            return [Finding(**finding) for finding in last["warnings"]]
        earlier = last if (same_definitions and last.get("tally")
                           and _only_loaded_since(conn, last.get("events"), events)) else None
        findings, tally = _check(conn, definitions, earlier)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise DefinitionProblems(errors, [f for f in findings if f.severity != "error"])
    if definitions_hash:
        record.write_text(json.dumps({"definitions": definitions_hash, "events": events, "tally": tally,
                                      "warnings": [asdict(f) for f in findings]}))
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
