"""``identity-warehouse explain``: why an identifier is in its profile, or why two are one person.

The dbt macro ``explain_identity`` (macros/operations/explain_identity.sql, for analysts) ported to
Python over a read-only connection, with the same output: every value that reaches SQL is a bound
parameter, so an identifier holding a quote (an apostrophe in an e-mail, or a crafted anonymous id
landed in an event) is only ever data.
"""

from __future__ import annotations

import duckdb

from orchestration.core.warehouse import table_exists
from orchestration.people.lookup import LookupProblem, find, junk_line, when

MAX_HOPS = 1000  # as the macro's loops

# The profile's links, one per pair of identifiers, with the first message that makes it.
PROFILE_LINKS_SQL = """
    select a, b, first_at, messages, message_id, file_path, line_number from (
        select from_type || ':' || from_value as a, to_type || ':' || to_value as b, event_at as first_at,
               count(*) over (partition by from_type, from_value, to_type, to_value) as messages,
               message_id, file_path, line_number,
               row_number() over (partition by from_type, from_value, to_type, to_value
                                  order by event_at, message_id) as evidence_rank
        from marts.identity_links where link_status = 'linked' and from_profile_id = $profile) as ranked
    where evidence_rank = 1 order by first_at, a, b"""

# Links merge protection refused between the two profiles, and junk identifiers next to either value.
REFUSED_SQL = """
    select from_type || ':' || from_value, to_type || ':' || to_value, message_id, refusal_reason
    from marts.identity_links where link_status = 'refused'
      and from_profile_id in ($first, $second) and to_profile_id in ($first, $second)
    order by event_at, message_id, 1, 2"""
OWN_JUNK_SQL = """
    select identifier_type, identifier_value, neighbour_type, distinct_neighbours, max_distinct_neighbours,
           example_message_id
    from marts.junk_identifiers where identifier_type = $type and identifier_value = $value order by neighbour_type"""
# Junk identifiers that would have joined the two: one of the two itself, or one seen in messages
# with identifiers of both profiles (or named as a neighbour of either value).
JUNK_SQL = """
    with sides as (
        select identifier_type, identifier_value, profile_id from marts.profile_identifiers
        where profile_id in ($first, $second)
    ),
    wanted as (
        select identifier_type, identifier_value, profile_id, false as is_junk from sides
        union all
        select distinct identifier_type, identifier_value, null, true from marts.junk_identifiers
    ),
    -- one pass over the identifiers of every message: those of the two profiles and the junk ones
    seen as (
        select messages.message_id, wanted.*
        from intermediate.int_identifiers as messages
        join wanted
            on wanted.identifier_type = messages.identifier_type and wanted.identifier_value = messages.identifier_value
    ),
    between_both as (
        select junk.identifier_type, junk.identifier_value
        from seen as junk
        join seen as beside on beside.message_id = junk.message_id and not beside.is_junk
        where junk.is_junk
        group by all having count(distinct beside.profile_id) = 2
    )
    select identifier_type, identifier_value, neighbour_type, distinct_neighbours, max_distinct_neighbours,
           example_message_id
    from marts.junk_identifiers as junk
    where (identifier_type = $first_type and identifier_value = $first_value)
       or (identifier_type = $second_type and identifier_value = $second_value)
       or (identifier_type, identifier_value) in (select identifier_type, identifier_value from between_both)
       or first_neighbour in ($first_value, $second_value) or last_neighbour in ($first_value, $second_value)
    order by identifier_type, identifier_value, neighbour_type"""
# Identifiers over a junk-detection threshold that their type's on_conflict stitches to one neighbour
# instead (int_identity_conflicts): why a device seen with two user ids is in one's profile only.
STITCHED_SQL = """
    select identifier_type || ':' || identifier_value, on_conflict, neighbour_type, distinct_neighbours, kept_neighbour
    from intermediate.int_identity_conflicts where on_conflict <> 'junk'
      and (identifier_value in ($first, $second) or kept_neighbour in ($first, $second)
           or first_neighbour in ($first, $second) or last_neighbour in ($first, $second))
    order by 1, 3"""


def stitched_lines(conn: duckdb.DuckDBPyConnection, first: str, second: str) -> list[str]:
    """One line per stitched identifier next to either value (none in a warehouse built before them)."""
    if not table_exists(conn, "intermediate", "int_identity_conflicts"):
        return []
    return [f"  stitched on conflict: {key} was seen with {neighbours} {neighbour_type}s; on_conflict {policy} "
            f"links it to {neighbour_type}:{kept} only"
            for key, policy, neighbour_type, neighbours, kept in conn.execute(
                STITCHED_SQL, {"first": first, "second": second}).fetchall()]


def resolve_identifier(conn: duckdb.DuckDBPyConnection, text: str, rules: dict) -> dict:
    """The identifier ``text`` names (``type:value`` or a bare value, as sent or normalised): its
    key, normalised value and profile; the first one in (type, value) order, as the macro."""
    found = find(conn, text, rules)
    if not found:
        raise LookupProblem("no such identifier in any profile (give type:value, e.g. email:dana@example.com, "
                            "or a value as `identity-warehouse lookup` takes it)")
    row = found[0]
    return {"key": f"{row['identifier_type']}:{row['identifier_value']}", "type": row["identifier_type"],
            "value": row["identifier_value"], "profile_id": row["profile_id"]}


def profile_links(conn: duckdb.DuckDBPyConnection, profile_id: str) -> list[dict]:
    links = []
    for a, b, first_at, messages, message_id, file_path, line_number in conn.execute(
            PROFILE_LINKS_SQL, {"profile": profile_id}).fetchall():
        more = f", and {messages - 1} more" if messages > 1 else ""
        links.append({"a": a, "b": b,
                      "evidence": f"message {message_id} ({file_path}:{line_number}, {when(first_at)}{more})"})
    return links


def explain(conn: duckdb.DuckDBPyConnection, identifier: str, other: str | None, rules: dict) -> list[str]:
    """The lines the macro prints."""
    first = resolve_identifier(conn, identifier, rules)
    if other is None:
        cursor = conn.execute(OWN_JUNK_SQL, {"type": first["type"], "value": first["value"]})
        columns = [d[0] for d in cursor.description]
        junk = [f"  {junk_line(dict(zip(columns, row)))}" for row in cursor.fetchall()]  # why it is alone
        return [f"profile {first['profile_id']} ({first['key']})"] + [
            f"  {link['a']}  --  {link['b']}   {link['evidence']}"
            for link in profile_links(conn, first["profile_id"])] + junk + stitched_lines(conn, first["value"], first["value"])
    second = resolve_identifier(conn, other, rules)
    if first["profile_id"] != second["profile_id"]:
        lines = [f"{first['key']} is in {first['profile_id']}, {second['key']} in {second['profile_id']}: not one person."]
        pair = {"first": first["profile_id"], "second": second["profile_id"]}
        for a, b, message_id, reason in conn.execute(REFUSED_SQL, pair).fetchall():
            lines.append(f"  refused: {a} -- {b} in {message_id} ({reason})")
        sides = {**pair, "first_type": first["type"], "first_value": first["value"],
                 "second_type": second["type"], "second_value": second["value"]}
        cursor = conn.execute(JUNK_SQL, sides)
        columns = [d[0] for d in cursor.description]
        for row in cursor.fetchall():
            lines.append(f"  {junk_line(dict(zip(columns, row)))}")
        lines += stitched_lines(conn, first["value"], second["value"])
        if len(lines) == 1:
            lines.append("  no message links an identifier of one to an identifier of the other")
        return lines
    # Breadth-first search over the profile's links.
    neighbours: dict[str, list[tuple[str, str]]] = {}
    for link in profile_links(conn, first["profile_id"]):
        neighbours.setdefault(link["a"], []).append((link["b"], link["evidence"]))
        neighbours.setdefault(link["b"], []).append((link["a"], link["evidence"]))
    came_from: dict[str, tuple[str, str] | None] = {first["key"]: None}
    frontier = [first["key"]]
    for _ in range(MAX_HOPS):
        if not frontier or second["key"] in came_from:
            break
        next_frontier = []
        for node in frontier:
            for neighbour, evidence in neighbours.get(node, []):
                if neighbour not in came_from:
                    came_from[neighbour] = (node, evidence)
                    next_frontier.append(neighbour)
        frontier = next_frontier
    hops = []
    node = second["key"]
    for _ in range(MAX_HOPS):
        if came_from.get(node) is None:
            break
        previous, evidence = came_from[node]
        hops.insert(0, f"  {previous}  --  {node}   {evidence}")
        node = previous
    return [f"{first['key']} and {second['key']} are one person, {first['profile_id']}, through "
            f"{len(hops)} link(s):", *hops]
