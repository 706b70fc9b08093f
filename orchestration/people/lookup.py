"""``identity-warehouse lookup VALUE``: a person's profile, found from any identifier.

The value is resolved in Python on a read-only DuckDB connection, by the same SQL as the dbt macro
``lookup_identifier`` (normalised by the identity rules, as ``int_identifiers`` does; the test
suite keeps the two equal). No dbt process runs: it would take seconds and write the value into
dbt's log. The value is only ever a bound parameter; an identifier type must be one of the
identity rules before it is used. Everything shown is then read from the documented marts, so an
analyst gets the same answers in SQL (docs/lookup.md). The identity graph is written
as Graphviz DOT and, when ``dot`` is installed, rendered to SVG, into a private folder
(``settings.lookup_graph_dir()``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.core import settings
from orchestration.core.locking import writer_lock
from orchestration.identity.rules import IdentityRules
from orchestration.privacy.requests import normalize_sql


class LookupProblem(Exception):
    """A lookup that cannot be answered: said to the person in one line, without a traceback."""


# ---------------------------------------------------------------------------------------------
# The warehouse, read-only
# ---------------------------------------------------------------------------------------------


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def open_warehouse(path: Path | None = None, on_wait: Callable[[str], None] | None = None
                   ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection. It takes the writer lock first (locking.py): while a run holds
    the file, DuckDB would refuse to open it, and a reader holding it would make the run's next
    step fail; so a lookup during a run waits for the run, saying so, and holds the lock only for
    the second it reads."""
    path = path or settings.duckdb_path()
    if not path.exists():
        raise LookupProblem(f"no warehouse at {path}: run `identity-warehouse run` first (or set DUCKDB_PATH)")

    def waiting(_: str) -> None:
        (on_wait or _say)(f"a run is writing the warehouse {path}: waiting for it to finish "
                          f"(lock {path.name}.lock), then reading")

    with writer_lock(path, on_wait=waiting):
        try:
            conn = duckdb.connect(str(path), read_only=True, config=settings.duckdb_config())
        except duckdb.IOException as error:  # held by a process outside the lock (a DuckDB shell, ...)
            raise LookupProblem(f"cannot open {path} read-only ({str(error).splitlines()[0]}); "
                                "close the program holding it and try again") from None
        try:
            conn.execute("set enable_progress_bar = false")
            yield conn
        except duckdb.CatalogException as error:
            raise LookupProblem(f"the warehouse {path} has no marts yet ({str(error).splitlines()[0]}): "
                                "run `identity-warehouse run` first") from None
        except duckdb.Error as error:
            raise LookupProblem(f"reading {path} failed: {str(error).splitlines()[0]}") from None
        finally:
            conn.close()


# ---------------------------------------------------------------------------------------------
# Resolving a value
# ---------------------------------------------------------------------------------------------


def shown(text: str, limit: int = 80) -> str:
    """A value as quoted in a message: escaped (no control characters reach the terminal), cut short."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def check_type(identifier_type: str, rules: dict) -> str:
    """The identity rules' name of ``identifier_type`` (any case); anything else is refused before any SQL."""
    types = rules["identifier_types"]
    name = identifier_type.strip()
    name = name if name in types else name.lower()
    if name not in types:
        raise LookupProblem(f"unknown identifier type {shown(identifier_type)} (use one of {', '.join(types)})")
    return name


def candidates_sql(rules: dict, identifier_type: str | None = None) -> tuple[str, dict]:
    """(identifier_type, identifier_value): the parameter ``$value`` normalised by each identifier
    type's rule (macros/identity/normalize.sql, through privacy.normalize_sql), or only by
    ``identifier_type``'s; with its parameters but the value."""
    if identifier_type is not None:
        identifier_type = check_type(identifier_type, rules)
    parsed = IdentityRules.parse(rules)
    types = [identifier_type] if identifier_type else list(parsed.types)
    params, selects = {}, []
    for i, name in enumerate(types):
        params[f"type_{i}"] = name
        selects.append(f"select $type_{i}::varchar as identifier_type, "
                       f"{normalize_sql(parsed.normalize(name), '$value::varchar', parsed.raw)} as identifier_value")
    return " union all ".join(selects), params


def normalized(conn: duckdb.DuckDBPyConnection, value: str, rules: dict | None = None) -> dict[str, str | None]:
    """``value`` normalised by every identifier type's rule, as the lookup compares it."""
    sql, params = candidates_sql(rules or settings.identity_rules())
    return dict(conn.execute(sql, {**params, "value": value}).fetchall())


def find_identifiers_sql(rules: dict, identifier_type: str | None = None) -> tuple[str, dict]:
    """The SQL of the dbt macro ``find_identifiers_sql``, with the value as the parameter ``$value``:
    (identifier_type, identifier_value, profile_id) of the identifiers the value may be, normalised
    by each identifier type's rule (or only ``identifier_type``'s), or matched as sent. Returns the
    SQL and its parameters but the value."""
    candidates, params = candidates_sql(rules, identifier_type)
    as_sent = ("select identifier_type, identifier_value from intermediate.int_identifiers "
               "where lower(trim(raw_value)) = lower(trim($value::varchar))")
    if identifier_type is not None:
        as_sent += " and identifier_type = $type_0"
    sql = ("select distinct p.identifier_type, p.identifier_value, p.profile_id from marts.profile_identifiers as p "
           f"join ({candidates} union {as_sent}) as c "
           "on c.identifier_type = p.identifier_type and c.identifier_value = p.identifier_value "
           "order by p.identifier_type, p.identifier_value, p.profile_id")
    return sql, params


def resolve(conn: duckdb.DuckDBPyConnection, value: str, identifier_type: str | None = None,
            rules: dict | None = None) -> list[dict]:
    """Profiles holding ``value`` (any identifier type unless given)."""
    rules = rules or settings.identity_rules()
    sql, params = find_identifiers_sql(rules, identifier_type)
    rows = conn.execute(sql, {**params, "value": value}).fetchall()
    return [{"identifier_type": t, "identifier_value": v, "profile_id": p} for t, v, p in rows]


def parse_identifier(text: str, rules: dict) -> tuple[str | None, str]:
    """``type:value`` when the text starts with an identifier type of the rules and a colon, else
    a bare value (looked up as every type, like ``lookup``): an anonymous id may hold a colon."""
    prefix, colon, rest = text.partition(":")
    try:
        return (check_type(prefix, rules), rest) if colon else (None, text)
    except LookupProblem:
        return None, text


QUOTES = {"'": "'", '"': '"', "\u2018": "\u2019", "\u201c": "\u201d", "`": "`"}


def unquoted(text: str) -> str:
    """``text`` without one pair of quotes around it (as copied from SQL, a CSV or a document)."""
    inner = text.strip()
    if len(inner) >= 2 and QUOTES.get(inner[0]) == inner[-1]:
        return inner[1:-1]
    return text


def identifier_forms(text: str, rules: dict, identifier_type: str | None = None) -> list[tuple[str | None, str]]:
    """(identifier type or None for every type, value) that ``text`` may mean, in the order tried:
    ``type:value`` (when it starts with a type of the rules), then the whole text as a value; each
    as given, then without quotes around it. ``identifier_type`` (``--type``) limits them to that type."""
    if identifier_type is not None:
        identifier_type = check_type(identifier_type, rules)
    forms: list[tuple[str | None, str]] = []
    for candidate in dict.fromkeys([text, unquoted(text)]):
        typed, value = parse_identifier(candidate, rules)
        if typed is not None and identifier_type in (None, typed):
            forms += [(typed, value), (typed, unquoted(value))]
        forms.append((identifier_type, candidate))
    return list(dict.fromkeys(forms))


def find(conn: duckdb.DuckDBPyConnection, text: str, rules: dict, identifier_type: str | None = None) -> list[dict]:
    """The profiles holding what ``text`` names, as ``lookup`` and ``explain`` both take it: the
    matches of its first form (``identifier_forms``) that finds any."""
    for form_type, value in identifier_forms(text, rules, identifier_type):
        found = resolve(conn, value, form_type, rules)
        if found:
            return found
    return []


def parse_lookup_output(stdout: str) -> list[dict]:
    """The matches the dbt macro ``lookup_identifier`` printed (its last JSON line): what an
    analyst running the macro gets, compared with ``resolve`` by the tests."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)["matches"]
    raise RuntimeError("no answer from lookup_identifier")


LATEST_EVENTS = 10

# section → SQL over the marts, parameter: the profile id
SECTIONS = {
    "profile": "select * exclude (traits) from marts.profiles where profile_id = ?",
    "identifiers": """
        select identifier_type, identifier_value, first_seen_at, last_seen_at, message_count
        from marts.profile_identifiers where profile_id = ? order by first_seen_at, identifier_type, identifier_value""",
    "traits": """
        select trait_key, trait_value::varchar as trait_value, trait_source, event_at, message_id, file_path,
               line_number, values_seen
        from marts.profile_trait_sources where profile_id = ? order by trait_key""",
    "computed_traits": "select * exclude (profile_id) from marts.profile_traits where profile_id = ?",
    "audiences": "select audience from marts.audience_members where profile_id = ? order by audience",
    "audience_history": """
        select audience, change, changed_at from marts.audience_membership_history
        where profile_id = ? order by changed_at, audience""",
    "events": f"""
        select event_at, source, message_type, event_name, message_id, file_path, line_number
        from marts.profile_events where profile_id = ? order by event_at desc, message_id limit {LATEST_EVENTS}""",
    # links inside the profile, one per pair with the first message that made it and how many did;
    # refused links from or to the profile, with the reason
    "links": """
        select from_type, from_value, to_type, to_value, link_status, refusal_reason,
               min(event_at) as first_at, count(*) as messages,
               min_by(message_id, event_at) as message_id, min_by(file_path, event_at) as file_path,
               min_by(line_number, event_at) as line_number,
               case when from_profile_id = $1 then to_profile_id else from_profile_id end as other_profile_id
        from marts.identity_links
        where from_profile_id = $1 or to_profile_id = $1
        group by all order by first_at, from_type, from_value, to_type, to_value""",
    "junk": """
        select identifier_type, identifier_value, neighbour_type, distinct_neighbours, max_distinct_neighbours,
               example_message_id
        from marts.junk_identifiers where profile_id = ? order by identifier_type, identifier_value, neighbour_type""",
    "merges": """
        select merged_profile_id, merged_at, from_identifier, to_identifier, caused_by_message_id
        from marts.profile_merges where surviving_profile_id = ? order by merged_at""",
}


@dataclass
class ProfileReport:
    profile_id: str
    matched: list[dict]
    sections: dict[str, list[dict]] = field(default_factory=dict)


def read_profile(conn, profile_id: str, matched: list[dict]) -> ProfileReport:
    report = ProfileReport(profile_id, matched)
    for name, sql in SECTIONS.items():
        cursor = conn.execute(sql, [profile_id])
        columns = [d[0] for d in cursor.description]
        report.sections[name] = [dict(zip(columns, row)) for row in cursor.fetchall()]
    return report


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def when(value) -> str:
    """A time as shown: ``never`` when there is none (a junk identifier's profile has no messages of its own)."""
    return "never" if value is None else str(value)


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [[(when(row[c]) if c.endswith("_at") else "" if row[c] is None else str(row[c])) for c in columns]
             for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return lines


def identifier_key(identifier_type: str, value: str) -> str:
    return f"{identifier_type}:{value}"


def junk_line(junk: dict) -> str:
    """Why an identifier links no one, with the rule of the identity rules it broke, e.g.
    ``anonymous_id:d-1 is junk: seen with 3 user ids (limit 1), so it links no one (e.g. message m-7)``."""
    seen = junk["neighbour_type"].replace("_", " ") + ("" if junk["distinct_neighbours"] == 1 else "s")
    example = f" (e.g. message {junk['example_message_id']})" if junk.get("example_message_id") else ""
    return (f"{identifier_key(junk['identifier_type'], junk['identifier_value'])} is junk: seen with "
            f"{junk['distinct_neighbours']} {seen} (limit {junk['max_distinct_neighbours']}), so it links no one{example}")


def render_text(report: ProfileReport) -> str:
    s = report.sections
    profile = s["profile"][0] if s["profile"] else {}
    out = [f"profile {report.profile_id}"
           + (f"  (found by {', '.join(identifier_key(m['identifier_type'], m['identifier_value']) for m in report.matched)})")]
    if profile:
        out.append(f"  user_id {profile['user_id'] or '-'} | email {profile['email'] or '-'} | phone {profile['phone'] or '-'}"
                   f" | {'anonymous' if profile['is_anonymous'] else 'known'} | {profile['event_count']} events"
                   f" | first seen {when(profile['first_seen_at'])} | last seen {when(profile['last_seen_at'])}")
    out += ["", "identifiers"] + _table(s["identifiers"], ["identifier_type", "identifier_value", "first_seen_at",
                                                           "last_seen_at", "message_count"])
    traits = [{**t, "from": f"{t['trait_source']} {t['message_id']} ({t['file_path']}:{t['line_number']}, "
                             f"{when(t['event_at'])})"}
              for t in s["traits"]]
    out += ["", "traits (merged; where each value came from)"] + _table(traits, ["trait_key", "trait_value", "from",
                                                                                 "values_seen"])
    computed = [{"trait": k, "value": v} for row in s["computed_traits"] for k, v in row.items() if v is not None]
    out += ["", "computed traits"] + _table(computed, ["trait", "value"])
    out += ["", "audiences: " + (", ".join(a["audience"] for a in s["audiences"]) or "(none)")]
    out += ["audience history"] + _table(s["audience_history"], ["changed_at", "audience", "change"])
    out += ["", f"latest events (up to {LATEST_EVENTS})"] + _table(
        s["events"], ["event_at", "source", "message_type", "event_name", "message_id"])
    out += ["", "identity graph (links with their evidence)"]
    for link in s["links"]:
        status = "==" if link["link_status"] == "linked" else "-x-"
        evidence = (f"{link['message_id']} ({link['file_path']}:{link['line_number']}, {when(link['first_at'])}"
                    + (f", and {link['messages'] - 1} more" if link["messages"] > 1 else "") + ")")
        refused = (f"  REFUSED ({link['refusal_reason'] or 'merge protection'}; other profile "
                   f"{link['other_profile_id']})" if link["link_status"] != "linked" else "")
        out.append(f"  {identifier_key(link['from_type'], link['from_value'])} {status} "
                   f"{identifier_key(link['to_type'], link['to_value'])}   {evidence}{refused}")
    if not s["links"]:
        out.append("  (a single identifier: no links)")
    for junk in s["junk"]:
        out.append(f"  {junk_line(junk)}")
    for merge in s["merges"]:
        out.append(f"  merged in {merge['merged_profile_id']} at {merge['merged_at']} through "
                   f"{merge['from_identifier']} -- {merge['to_identifier']} ({merge['caused_by_message_id']})")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Picture
# ---------------------------------------------------------------------------------------------

NODE_STYLE = {"user_id": "#c7e9c0", "email": "#c6dbef", "phone": "#fdd0a2", "anonymous_id": "#efedf5"}


def _dot_string(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(report: ProfileReport) -> str:
    """The profile's identity graph: identifiers as nodes, links as edges labelled with their evidence;
    refused links (to other profiles) dashed red, junk identifiers grey."""
    s = report.sections
    junk = {identifier_key(j["identifier_type"], j["identifier_value"]) for j in s["junk"]}
    lines = ["graph identity {", "  graph [rankdir=LR, fontname=Helvetica, fontsize=11, labelloc=t, "
             f"label={_dot_string('profile ' + report.profile_id)}];",
             "  node [shape=box, style=\"rounded,filled\", fontname=Helvetica, fontsize=10];",
             "  edge [fontname=Helvetica, fontsize=8, color=\"#555555\"];"]
    for row in s["identifiers"]:
        key = identifier_key(row["identifier_type"], row["identifier_value"])
        color = "#d9d9d9" if key in junk else NODE_STYLE.get(row["identifier_type"], "#ffffcc")
        label = f"{row['identifier_type']}\n{row['identifier_value']}" + ("\n(junk)" if key in junk else "")
        lines.append(f"  {_dot_string(key)} [label={_dot_string(label)}, fillcolor={_dot_string(color)}];")
    others = set()
    for link in s["links"]:
        a = identifier_key(link["from_type"], link["from_value"])
        b = identifier_key(link["to_type"], link["to_value"])
        evidence = f"{link['message_id']}\n{Path(str(link['file_path'])).name}:{link['line_number']}"
        if link["messages"] > 1:
            evidence += f" (+{link['messages'] - 1})"
        if link["link_status"] == "linked":
            lines.append(f"  {_dot_string(a)} -- {_dot_string(b)} [label={_dot_string(evidence)}];")
        else:
            for node in (a, b):
                if node not in {identifier_key(r["identifier_type"], r["identifier_value"]) for r in s["identifiers"]}:
                    others.add(node)
            lines.append(f"  {_dot_string(a)} -- {_dot_string(b)} [style=dashed, color=red, fontcolor=red, "
                         f"label={_dot_string('refused: ' + (link['refusal_reason'] or '') + chr(10) + evidence)}];")
    for node in sorted(others):
        lines.append(f"  {_dot_string(node)} [label={_dot_string(node.replace(':', chr(10), 1) + chr(10) + '(other profile)')}, "
                     "style=\"rounded,dashed\"];")
    lines.append("}")
    return "\n".join(lines) + "\n"


SAFE_FILE_STEM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")


def private_folder(path: Path) -> Path:
    """``path`` made (owner-only, 0700, with any missing parent) and resolved; an existing folder
    is left as it is."""
    path = Path(path).expanduser().resolve()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask
    return path


def graph_paths(profile_id: str, out_dir: Path) -> tuple[Path, Path]:
    """``<out_dir>/<profile_id>.dot`` and ``.svg``; a profile id that is not a plain file name
    (it comes from the warehouse) is refused rather than let out of the folder."""
    out_dir = Path(out_dir).resolve()
    dot_file = (out_dir / f"{profile_id}.dot").resolve()
    if not SAFE_FILE_STEM.match(profile_id) or dot_file.parent != out_dir:
        raise LookupProblem("a profile id that is not a plain file name: no graph written")
    return dot_file, dot_file.with_suffix(".svg")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file of the same name may have been readable
        handle.write(text)


def write_graph(report: ProfileReport, out_dir: Path | None = None) -> list[Path]:
    """Writes ``<profile>.dot`` and, when Graphviz's ``dot`` is on PATH, ``<profile>.svg``, owner-only
    (0600), into ``out_dir`` (made 0700 if missing; default ``settings.lookup_graph_dir()``, where
    a privacy delete finds them by profile id)."""
    out_dir = private_folder(out_dir or settings.lookup_graph_dir())
    dot_file, svg = graph_paths(report.profile_id, out_dir)
    _write_private(dot_file, render_dot(report))
    written = [dot_file]
    dot = shutil.which("dot")
    if dot:
        _write_private(svg, "")  # created owner-only before dot writes into it
        subprocess.run([dot, "-Tsvg", str(dot_file), "-o", str(svg)], check=True, capture_output=True)
        os.chmod(svg, 0o600)
        written.append(svg)
    return written
