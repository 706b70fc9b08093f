"""The lookup command's renderers, on a hand-made report (no warehouse needed); resolving and
explaining on a small hand-made warehouse, with hostile values and identifier types."""

import os
import stat
from datetime import datetime

import duckdb
import pytest

from orchestration.core import settings
from orchestration.people.explain import explain
from orchestration.people.lookup import (
    LookupProblem,
    ProfileReport,
    check_type,
    graph_paths,
    open_warehouse,
    parse_identifier,
    parse_lookup_output,
    render_dot,
    render_text,
    resolve,
    write_graph,
)
from tests.conftest import environment

AT = datetime(2024, 3, 12, 15, 6)


def report() -> ProfileReport:
    link = dict(from_type="user_id", from_value="u1", to_type="email", to_value="dana@example.com", link_status="linked",
                refusal_reason=None, first_at=AT, messages=2, message_id="m1", file_path="events/a.jsonl",
                line_number=3, other_profile_id="p1")
    refused = {**link, "to_type": "user_id", "to_value": "u2", "link_status": "refused",
               "refusal_reason": "user_id limit 1", "other_profile_id": "p2", "messages": 1}
    return ProfileReport("p1", [{"identifier_type": "email", "identifier_value": "dana@example.com", "profile_id": "p1"}], {
        "profile": [dict(user_id="u1", email="dana@example.com", phone=None, is_anonymous=False, event_count=2,
                         first_seen_at=AT, last_seen_at=AT)],
        "identifiers": [dict(identifier_type="user_id", identifier_value="u1", first_seen_at=AT, last_seen_at=AT, message_count=2),
                        dict(identifier_type="email", identifier_value="dana@example.com", first_seen_at=AT,
                             last_seen_at=AT, message_count=1)],
        "traits": [dict(trait_key="name", trait_value='"Dana"', trait_source="list:webinar", message_id="c1",
                        file_path="contacts/webinar.csv", line_number=2, event_at=AT, values_seen=1)],
        "computed_traits": [dict(orders_count=3, total_revenue=None)],
        "audiences": [dict(audience="buyers")],
        "audience_history": [dict(audience="buyers", change="entered", changed_at=AT)],
        "events": [dict(event_at=AT, source="segment", message_type="track", event_name="Signed Up", message_id="m1")],
        "links": [link, refused],
        "junk": [],
        "merges": [],
    })


def test_text_shows_every_section_with_sources_and_evidence():
    text = render_text(report())
    assert "found by email:dana@example.com" in text
    assert 'name       "Dana"' in text and "list:webinar c1 (contacts/webinar.csv:2" in text
    assert "orders_count  3" in text and "total_revenue" not in text  # null computed traits are left out
    assert "audiences: buyers" in text and "entered" in text
    assert "user_id:u1 == email:dana@example.com   m1 (events/a.jsonl:3, 2024-03-12 15:06:00, and 1 more)" in text
    assert "REFUSED (user_id limit 1; other profile p2)" in text


def test_graph_has_a_node_per_identifier_and_labelled_links():
    dot = render_dot(report())
    assert dot.startswith("graph identity {") and dot.rstrip().endswith("}")
    assert '"user_id:u1" -- "email:dana@example.com" [label="m1\\na.jsonl:3 (+1)"];' in dot
    assert 'style=dashed, color=red' in dot and '"user_id:u2" [label="user_id\\nu2\\n(other profile)"' in dot


def test_the_macro_answer_is_read_from_its_last_json_line():
    out = 'some log line\n{"value": "x", "matches": [{"identifier_type": "email", "identifier_value": "x", "profile_id": "p"}]}\n'
    assert parse_lookup_output(out) == [{"identifier_type": "email", "identifier_value": "x", "profile_id": "p"}]


# ---------------------------------------------------------------------------------------------
# Resolving and explaining on a small hand-made warehouse: hostile values stay data
# ---------------------------------------------------------------------------------------------

RULES = {
    "default_phone_country_code": "1", "national_phone_number_length": 10,
    "identifier_types": {"user_id": {"normalize": "id"}, "email": {"normalize": "email"},
                         "phone": {"normalize": "phone"}, "anonymous_id": {"normalize": "id"}},
}
# A crafted anonymous id as it could land in an event, and an e-mail with an apostrophe.
CRAFTED_ANON = "x'); create table main.pwned as select 42 as answer; --"
OBRIEN = "o'brien@example.com"
# (message, type, normalised value, raw value, profile)
IDENTIFIERS = [
    ("m1", "user_id", "u1", "u1", "p1"), ("m1", "email", "dana@example.com", " Dana@Example.com", "p1"),
    ("m2", "anonymous_id", CRAFTED_ANON, CRAFTED_ANON, "p2"), ("m2", "user_id", "u2", "u2", "p2"),
    ("m3", "email", OBRIEN, "O'Brien@Example.com", "p3"), ("m3", "phone", "+14155550101", "(415) 555-0101", "p3"),
    # a device shared by u0, u1, u2 and u3: junk, in a profile of its own; u1 and u2 are not its first
    # or last neighbour
    ("m7", "anonymous_id", "dev-1", "dev-1", "p9"), ("m7", "user_id", "u1", "u1", "p1"),
    ("m8", "anonymous_id", "dev-1", "dev-1", "p9"), ("m8", "user_id", "u2", "u2", "p2"),
]
HOSTILE = [
    "'", "''", "\\'", "'; drop table marts.profile_identifiers; --", "x' or '1'='1", "$1", "$value", "?",
    "a\x00b", "\x00", "x" * 100_000, "é'Ω💥", "line\nbreak", "%", "_", "%@%", "\\", "\\\\'", '"', "`", ";",
    "' union select identifier_value, identifier_value, profile_id from marts.profile_identifiers --",
]


def hand_made_warehouse(path) -> None:
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema marts; create schema intermediate")
        conn.execute("create table intermediate.int_identifiers (message_id varchar, identifier_type varchar, "
                     "identifier_value varchar, raw_value varchar)")
        conn.execute("create table marts.profile_identifiers (identifier_type varchar, identifier_value varchar, "
                     "profile_id varchar)")
        for message, kind, value, raw, profile in IDENTIFIERS:
            conn.execute("insert into intermediate.int_identifiers values (?, ?, ?, ?)", [message, kind, value, raw])
            conn.execute("insert into marts.profile_identifiers values (?, ?, ?)", [kind, value, profile])
        conn.execute("""create table marts.identity_links as select * from (values
            ('m1', timestamp '2024-03-12 15:06:00', 'user_id', 'u1', 'email', 'dana@example.com', 'linked', null, 'p1', 'p1', 'a.jsonl', 1),
            ('m2', timestamp '2024-03-13 10:00:00', 'user_id', 'u2', 'anonymous_id', $crafted, 'linked', null, 'p2', 'p2', 'b.jsonl', 2),
            ('m9', timestamp '2024-03-14 10:00:00', 'user_id', 'u2', 'email', 'dana@example.com', 'refused', 'user_id limit 1', 'p2', 'p1', 'b.jsonl', 9)
            ) as t(message_id, event_at, from_type, from_value, to_type, to_value, link_status, refusal_reason,
                   from_profile_id, to_profile_id, file_path, line_number)""", {"crafted": CRAFTED_ANON})
        conn.execute("create table marts.junk_identifiers as select 'anonymous_id' as identifier_type, "
                     "'shared' as identifier_value, 'seen_with_too_many_user_ids' as reason, 'user_id' as neighbour_type, "
                     "2 as distinct_neighbours, 1 as max_distinct_neighbours, $crafted as first_neighbour, "
                     "'u9' as last_neighbour, 'm5' as example_message_id", {"crafted": CRAFTED_ANON})
        conn.execute("insert into marts.junk_identifiers values ('anonymous_id', 'dev-1', 'seen_with_too_many_user_ids', "
                     "'user_id', 4, 1, 'u0', 'u3', 'm7')")


def state(path) -> dict:
    """Every table with its row count, and the folder's files (but the writer lock's)."""
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute("select table_schema, table_name from information_schema.tables order by all").fetchall()
        counts = {f"{s}.{t}": conn.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in tables}
    return {"tables": counts, "files": sorted(p.name for p in path.parent.iterdir() if p.suffix != ".lock")}


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    hand_made_warehouse(path)
    with environment(DUCKDB_PATH=path):
        yield path


@pytest.mark.parametrize("crafted_type", [
    "email' or 1=1 --", "email'; drop table marts.profile_identifiers; --", "x') union select 1,2,3 --", "$1",
    "", " ", "\x00", "e%", "_mail", "email\\", "email;"])
def test_an_identifier_type_not_in_the_rules_is_refused_before_any_sql(warehouse, crafted_type):
    before = state(warehouse)
    with open_warehouse(warehouse) as conn, pytest.raises(LookupProblem, match="unknown identifier type"):
        resolve(conn, "dana@example.com", crafted_type, RULES)
    assert state(warehouse) == before


def test_identifier_types_are_the_rules_own_names_in_any_case():
    assert check_type(" Email ", RULES) == "email"
    assert parse_identifier("EMAIL:o'brien@example.com", RULES) == ("email", OBRIEN)
    assert parse_identifier("amp:web:1", RULES) == (None, "amp:web:1")  # not a type: a bare value with colons
    assert parse_identifier(OBRIEN, RULES) == (None, OBRIEN)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_bound_parameters_and_find_nothing(warehouse, value):
    before = state(warehouse)
    with open_warehouse(warehouse) as conn:
        assert resolve(conn, value, None, RULES) == []
        for kind in RULES["identifier_types"]:
            assert resolve(conn, value, kind, RULES) == []
        with pytest.raises(LookupProblem, match="no such identifier"):
            explain(conn, value, None, RULES)
        with pytest.raises(LookupProblem, match="no such identifier"):
            explain(conn, f"anonymous_id:{value}", "user_id:u1", RULES)
    assert state(warehouse) == before


def test_landed_values_with_quotes_are_found_as_they_are_and_never_run(warehouse):
    before = state(warehouse)
    with open_warehouse(warehouse) as conn:
        assert resolve(conn, CRAFTED_ANON, None, RULES) == [
            {"identifier_type": "anonymous_id", "identifier_value": CRAFTED_ANON, "profile_id": "p2"}]
        assert [m["profile_id"] for m in resolve(conn, "O'BRIEN@example.com ", "email", RULES)] == ["p3"]
        # apart: the crafted value of the one reaches the junk and refusal queries of the other
        apart = explain(conn, f"anonymous_id:{CRAFTED_ANON}", "email:dana@example.com", RULES)
        assert apart[0] == f"anonymous_id:{CRAFTED_ANON} is in p2, email:dana@example.com in p1: not one person."
        assert "  refused: user_id:u2 -- email:dana@example.com in m9 (user_id limit 1)" in apart
        assert ("  anonymous_id:shared is junk: seen with 2 user ids (limit 1), so it links no one (e.g. message m5)"
                in apart)  # (was "junk, links no one: anonymous_id:shared (seen_with_too_many_user_ids, 2)")
        together = explain(conn, CRAFTED_ANON, "u2", RULES)  # bare values, as lookup takes them
        assert together[0] == f"anonymous_id:{CRAFTED_ANON} and user_id:u2 are one person, p2, through 1 link(s):"
        assert explain(conn, f"email:{OBRIEN}", None, RULES) == [f"profile p3 (email:{OBRIEN})"]
        assert explain(conn, "(415) 555-0101", OBRIEN, RULES)[0].endswith("are one person, p3, through 0 link(s):")
    assert state(warehouse) == before


def test_graphs_go_to_a_private_folder_beside_the_warehouse(warehouse):
    folder = settings.lookup_graph_dir()
    assert folder == warehouse.parent / "private" / "lookups"
    written = write_graph(report())
    assert written[0] == folder / "p1.dot"
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (folder, folder.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for crafted in ("../p1", "..", "/etc/passwd", "a/b", ".hidden", ""):
        with pytest.raises(LookupProblem):
            graph_paths(crafted, folder)


def test_a_missing_warehouse_is_a_clean_error(tmp_path):
    with pytest.raises(LookupProblem, match="no warehouse at"):
        with open_warehouse(tmp_path / "none.duckdb"):
            pass
    assert not (tmp_path / "none.duckdb").exists()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# One way to name an identifier; dates never shown as None; why two are apart
# ---------------------------------------------------------------------------------------------

FORMS = {
    "p1": ["email:dana@example.com", "dana@example.com", " Dana@Example.com", "'dana@example.com'",
           '"Dana@Example.com"', "EMAIL:dana@example.com", "email:'dana@example.com'", "“dana@example.com”",
           "user_id:u1", "u1"],
    "p3": [f"email:{OBRIEN}", OBRIEN, "O'Brien@Example.com", f"'{OBRIEN}'", f'"{OBRIEN}"', f"email:\"{OBRIEN}\"",
           "(415) 555-0101", "phone:(415) 555-0101", "'(415) 555-0101'"],
}


@pytest.mark.parametrize("profile, form", [(p, f) for p, forms in FORMS.items() for f in forms])
def test_lookup_and_explain_take_the_same_identifier_forms(warehouse, profile, form):
    """type:value, a bare value, quoted or not, apostrophes inside. Before: lookup refused type:value
    and both refused a quoted value."""
    from orchestration.people.lookup import find

    with open_warehouse(warehouse) as conn:
        assert {m["profile_id"] for m in find(conn, form, RULES)} == {profile}  # what `lookup` runs
        assert explain(conn, form, None, RULES)[0].startswith(f"profile {profile} (")


def test_type_limits_the_forms_to_that_type(warehouse):
    from orchestration.people.lookup import find

    with open_warehouse(warehouse) as conn:
        assert find(conn, "email:dana@example.com", RULES, "email")[0]["profile_id"] == "p1"
        assert find(conn, "email:dana@example.com", RULES, "phone") == []
        assert find(conn, "'u1'", RULES, "user_id")[0]["profile_id"] == "p1"


def test_missing_dates_show_never_not_none():
    """Before: `lookup` of a junk identifier printed `first seen None` (its profile has no messages of its own)."""
    bare = report()
    bare.sections["profile"][0].update(first_seen_at=None, last_seen_at=None)
    bare.sections["identifiers"][0].update(first_seen_at=None)
    text = render_text(bare)
    assert "| first seen never | last seen never" in text
    assert "None" not in text
    assert "  user_id          u1                never" in text


def test_explain_says_which_identifier_is_junk_and_the_rule(warehouse):
    """Before: two people kept apart by a junk device were "not one person", without why (unless
    one of them happened to be the device's first or last neighbour)."""
    with open_warehouse(warehouse) as conn:
        apart = explain(conn, "u1", "user_id:u2", RULES)
        device = explain(conn, "anonymous_id:dev-1", "u1", RULES)
    reason = "  anonymous_id:dev-1 is junk: seen with 4 user ids (limit 1), so it links no one (e.g. message m7)"
    assert apart[0] == "user_id:u1 is in p1, user_id:u2 in p2: not one person." and reason in apart
    assert device[0] == "anonymous_id:dev-1 is in p9, user_id:u1 in p1: not one person." and reason in device


def test_explain_says_when_nothing_links_two_people(warehouse):
    with open_warehouse(warehouse) as conn:
        assert explain(conn, "email:dana@example.com", OBRIEN, RULES)[1:] == [
            "  no message links an identifier of one to an identifier of the other"]
