"""Definitions checked before the build: mistakes name their file and line, and the definitions are
checked against the events already landed (a misspelt property, text summed as numbers)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import duckdb
import pytest

from orchestration.computed.landed import DefinitionProblems, check_before_build, check_landed
from orchestration.computed.schema import DefinitionError, load_definitions

TRAITS = """\
# a comment
trait_groups:
  commerce:
    traits:
      - name: total_revenue
        type: sum
        event: Order Completed
        property: revenue
      - name: misspelt_revenue
        type: sum
        event: Order Completed
        property: revenu
      - name: plan_total
        type: sum
        event: Signed Up
        property: plan
      - name: seats_total
        type: sum
        event: Signed Up
        property: seats
      - name: last_plan
        type: last
        event: Signed Up
        property: plan
      - name: big_carts
        type: count
        event: Product Added To Cart
        where:
          - {property: cart.total, op: ">", value: 100}
          - {property: cart.itms, op: exists}
"""
AUDIENCES = """\
audiences:
  buyers:
    condition:
      all:
        - {trait: total_revenue, op: ">", value: 0}
        - event: Order Complted
        - event: Order Completed
          where: [{property: coupn, op: exists}]
"""


def write(tmp_path, traits: str = TRAITS, audiences: str = AUDIENCES):
    (tmp_path / "traits.yml").write_text(textwrap.dedent(traits))
    (tmp_path / "audiences.yml").write_text(textwrap.dedent(audiences))
    return tmp_path / "traits.yml", tmp_path / "audiences.yml"


def definition_error(tmp_path, traits: str = TRAITS, audiences: str = AUDIENCES) -> DefinitionError:
    with pytest.raises(DefinitionError) as raised:
        load_definitions(*write(tmp_path, traits, audiences))
    return raised.value


# ---------------------------------------------------------------------------------------------
# File and line
# ---------------------------------------------------------------------------------------------


def test_definitions_remember_their_file_and_line(tmp_path):
    definitions = load_definitions(*write(tmp_path))
    lines = {trait.name: (trait.file, trait.line) for trait in definitions.traits}
    assert lines["total_revenue"][0] == str(tmp_path / "traits.yml")  # (from the project's root when inside it)
    lines = {name: (Path(file).name, line) for name, (file, line) in lines.items()}
    assert lines["total_revenue"] == ("traits.yml", 5)
    assert lines["big_carts"] == ("traits.yml", 25)
    where = definitions.traits[-1].filter.where.parts
    assert [(c.subject, c.line) for c in where] == [("cart.total", 29), ("cart.itms", 30)]
    buyers = definitions.audiences[0]
    assert (buyers.file, buyers.line) == (str(tmp_path / "audiences.yml"), 3)
    first, second, third = buyers.condition.parts
    assert (first.line, second.filter.line, third.filter.line) == (5, 6, 7)


@pytest.mark.parametrize("traits, audiences, expected", [
    (TRAITS.replace("type: count", "type: median"), AUDIENCES,
     "traits.yml:26: trait 'big_carts' (group 'commerce'): unknown trait type 'median'"),
    (TRAITS.replace('op: ">", value: 100', 'op: greater, value: 100'), AUDIENCES,
     "traits.yml:29: trait 'big_carts' (group 'commerce'), where, all[1]: unknown operator 'greater'"),
    (TRAITS, AUDIENCES.replace('op: ">", value: 0', 'op: ">", value: lots'),
     "audiences.yml:5: audience 'buyers', condition, all[1]: trait 'total_revenue' is compared as a number"),
    (TRAITS, AUDIENCES.replace("        - event: Order Complted\n", "        - event: Order Complted\n"
                                                                        "          colour: red\n"),
     "audiences.yml:7: audience 'buyers', condition, all[2]: unknown key(s) colour"),
    (TRAITS + "      - name: total_revenue\n        type: count\n", AUDIENCES,
     "traits.yml:31: trait 'total_revenue': defined twice"),
    (TRAITS, AUDIENCES + "  loop_a: {condition: {audience: loop_b}}\n  loop_b: {condition: {audience: loop_a}}\n",
     "audiences.yml:9: audience 'loop_a': audiences depend on each other in a cycle"),
    (TRAITS.replace("    traits:\n", "    traits:\n  - broken: [\n", 1), AUDIENCES, "traits.yml:5: not valid YAML"),
])
def test_errors_name_file_line_and_definition(tmp_path, traits, audiences, expected):
    """Before: the message named the definition but neither file nor line."""
    assert str(definition_error(tmp_path, traits, audiences)).startswith(f"{tmp_path}/{expected}")


# ---------------------------------------------------------------------------------------------
# Against the landed events
# ---------------------------------------------------------------------------------------------

EVENTS = [
    # (message_type, event_name, properties)
    ("track", "Order Completed", {"revenue": 12.5, "coupon": "SPRING"}),
    ("track", "Order Completed", {"revenue": "30", "currency": "EUR"}),
    ("track", "Signed Up", {"plan": "team", "seats": 3}),
    ("track", "Signed Up", {"plan": "pro", "seats": "N/A"}),
    ("track", "Product Added To Cart", {"cart": {"total": 120, "items": 2}}),
    ("page", "Pricing", {"path": "/pricing"}),
]


@pytest.fixture
def landed(tmp_path):
    """A small warehouse with landed events in marts.profile_events, as a build leaves them."""
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as conn:
        conn.execute("create schema marts")
        conn.execute("create table marts.profile_events (message_id varchar, message_type varchar, "
                     "event_name varchar, properties json, loaded_at timestamp, updated_at timestamp)")
        conn.executemany("insert into marts.profile_events values (?, ?, ?, ?, '2024-06-01', '2024-06-01')",
                         [[f"m-{i}", t, e, json.dumps(p)] for i, (t, e, p) in enumerate(EVENTS, start=1)])
    return database


def findings(tmp_path, database, traits: str = TRAITS, audiences: str = AUDIENCES):
    definitions = load_definitions(*write(tmp_path, traits, audiences))
    with duckdb.connect(str(database), read_only=True) as conn:
        return check_landed(conn, definitions)


def said(tmp_path, found) -> list[str]:
    """Findings as printed, their files named from tmp_path."""
    return [str(f).replace(f"{tmp_path}/", "") for f in found]


def test_a_property_never_seen_is_a_warning_with_the_closest_names(tmp_path, landed):
    """Before: a sum of `revenu` built, null for every profile, without a word."""
    warnings = set(said(tmp_path, [f for f in findings(tmp_path, landed) if f.severity == "warning"]))
    assert ("traits.yml:9: trait 'misspelt_revenue' (group 'commerce'): property 'revenu' never seen in the landed "
            "'Order Completed' events (closest seen: 'revenue')") in warnings
    # a nested path: the names seen beside it
    assert ("traits.yml:30: trait 'big_carts' (group 'commerce'): property 'cart.itms' never seen in the landed "
            "'Product Added To Cart' events (closest seen: 'cart.items')") in warnings
    # audiences too, and event names
    assert ("audiences.yml:6: audience 'buyers': event 'Order Complted' never seen in the landed events "
            "(closest seen: 'Order Completed')") in warnings
    assert ("audiences.yml:8: audience 'buyers': property 'coupn' never seen in the landed 'Order Completed' events "
            "(closest seen: 'coupon')") in warnings
    assert len(warnings) == 4, warnings  # revenue, seats, plan (read as text), cart.total are seen


def test_a_number_aggregation_over_text_is_an_error_before_the_build(tmp_path, landed):
    """Before: `sum` of a text property passed every check and failed in dbt (`Could not convert
    string 'team' to DOUBLE` in traits__commerce: the model named, not the trait)."""
    definitions = load_definitions(*write(tmp_path))
    with pytest.raises(DefinitionProblems) as raised:
        check_before_build(landed, definitions)
    assert said(tmp_path, raised.value.findings) == [
        "traits.yml:13: trait 'plan_total' (group 'commerce'): property 'plan' is aggregated as a number, but none "
        "of its 2 landed value(s) in 'Signed Up' events is a number (e.g. message(s) m-3, m-4): read another "
        "property, or use a trait type for text (last, most_frequent, unique_count)"]
    # a few values that are not numbers among numbers (seats: 3, 'N/A') stay the safe-cast warning of
    # the check trait_property_values_conform after the build: no finding here
    assert not [f for f in findings(tmp_path, landed) if "'seats'" in f.message]
    # the string values themselves never reach the message
    assert "team" not in str(raised.value)


def test_without_errors_the_warnings_are_returned(tmp_path, landed):
    traits = TRAITS.replace("property: plan\n", "property: seats\n", 1)
    warnings = check_before_build(landed, load_definitions(*write(tmp_path, traits)))
    assert warnings and {f.severity for f in warnings} == {"warning"}


def test_nothing_is_checked_before_the_first_build(tmp_path):
    definitions = load_definitions(*write(tmp_path))
    assert check_before_build(tmp_path / "missing.duckdb", definitions) == []
    database = tmp_path / "landed_only.duckdb"
    with duckdb.connect(str(database)) as conn:
        conn.execute("create schema raw; create table raw.events (payload json)")
    assert check_before_build(database, definitions) == []


def test_property_names_and_event_names_are_bound_not_spliced(tmp_path, landed):
    audiences = 'audiences:\n  odd:\n    condition: {event: "x\'); drop table marts.profile_events; --"}\n'
    found = findings(tmp_path, landed, audiences=audiences)
    assert any("never seen" in f.message and "drop table" in f.message for f in found)
    with duckdb.connect(str(landed), read_only=True) as conn:
        assert conn.execute("select count(*) from marts.profile_events").fetchone()[0] == len(EVENTS)


def test_the_warnings_are_said_with_the_errors(tmp_path, landed, capsys):
    from orchestration.computed.landed import check_definitions_before_build

    write(tmp_path)
    with pytest.raises(DefinitionProblems) as raised:
        check_definitions_before_build(landed, tmp_path)
    assert len(raised.value.findings) == 1 and len(raised.value.warnings) == 4
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 4 and all(line.startswith(f"WARNING: {tmp_path}/") for line in said)


def test_the_scan_runs_again_only_when_the_definitions_or_the_events_changed(tmp_path, landed, monkeypatch, capsys):
    """Before every run, the check scans every landed event: a run with nothing new repeats the last
    check's warnings instead (the same words), and pays for no scan that grows with the warehouse."""
    from orchestration.computed import landed as landed_checks

    write(tmp_path)
    with pytest.raises(DefinitionProblems):  # errors are never kept: the next run checks again
        landed_checks.check_definitions_before_build(landed, tmp_path)
    assert not landed_checks.checked_file(landed).exists()
    without_error = TRAITS.replace("""      - name: plan_total
        type: sum
        event: Signed Up
        property: plan
""", "")
    write(tmp_path, traits=without_error)
    first = landed_checks.check_definitions_before_build(landed, tmp_path)
    assert len(first) == 4 and landed_checks.checked_file(landed).exists()

    scans = []
    real_tally = landed_checks._tally
    monkeypatch.setattr(landed_checks, "_tally", lambda conn, reads, where="true", params=(): scans.append(where)
                        or real_tally(conn, reads, where, params))
    capsys.readouterr()
    assert landed_checks.check_definitions_before_build(landed, tmp_path) == first
    assert scans == [] and capsys.readouterr().err.count("WARNING: ") == 4

    with duckdb.connect(str(landed)) as conn:  # a build rewrote events: nothing loaded since to read
        conn.execute("update marts.profile_events set updated_at = '2024-06-02' where message_id = 'm-1'")
    assert landed_checks.check_definitions_before_build(landed, tmp_path) == first and scans == ["loaded_at > ?"]
    write(tmp_path, traits=without_error + "# edited\n")  # the definitions changed: every event
    landed_checks.check_definitions_before_build(landed, tmp_path)
    assert scans == ["loaded_at > ?", "true"]


def test_events_loaded_since_the_last_check_are_the_only_ones_read(tmp_path, landed, monkeypatch):
    """A run that lands a little reads only what it landed, added to what the check before tallied,
    and finds what a scan of every event finds: a property first seen only as text is an error, a
    warning is resolved. An event gone (an erasure) reads every event again."""
    from orchestration.computed import landed as landed_checks

    traits = TRAITS.replace("property: plan\n", "property: seats\n", 1)  # no error to begin with
    files = write(tmp_path, traits)
    definitions, text = load_definitions(*files), "\0".join(path.read_text() for path in files)
    before = check_before_build(landed, definitions, text)
    assert any("'revenu' never seen" in f.message for f in before)

    scans = []
    real_tally = landed_checks._tally
    monkeypatch.setattr(landed_checks, "_tally", lambda conn, reads, where="true", params=(): scans.append(where)
                        or real_tally(conn, reads, where, params))

    def land(message_id: str, properties: str, day: str) -> None:
        with duckdb.connect(str(landed)) as conn:
            conn.execute("insert into marts.profile_events values (?, 'track', 'Order Completed', ?, ?, ?)",
                         [message_id, properties, day, day])

    def full_check() -> list[str]:  # a scan of every event, not counted in `scans`
        with duckdb.connect(str(landed), read_only=True) as conn:
            found = sorted(map(str, check_landed(conn, definitions)))
        scans.pop()
        return found

    land("m-7", '{"revenu": "lots"}', "2024-06-02")  # summed, and only text so far
    with pytest.raises(DefinitionProblems) as raised:
        check_before_build(landed, definitions, text)
    assert scans == ["loaded_at > ?"]
    assert sorted(map(str, raised.value.findings + raised.value.warnings)) == full_check()
    assert "'revenu' is aggregated as a number" in str(raised.value)

    land("m-8", '{"revenu": 5, "coupn": "X"}', "2024-06-03")  # read on from the check before the error
    after = check_before_build(landed, definitions, text)
    assert scans == ["loaded_at > ?"] * 2
    assert sorted(map(str, after)) == full_check()
    assert not any("'revenu'" in f.message or "'coupn'" in f.message for f in after) and len(after) == len(before) - 2

    with duckdb.connect(str(landed)) as conn:
        conn.execute("delete from marts.profile_events where message_id = 'm-7'")
    check_before_build(landed, definitions, text)
    assert scans[-1] == "true"


def test_an_older_warehouse_without_the_events_stamps_is_checked_before_its_upgrade(tmp_path, landed):
    """The check runs before the run's migrations: profile_events of an older warehouse may have
    neither updated_at nor loaded_at."""
    from orchestration.computed import landed as landed_checks

    with duckdb.connect(str(landed)) as conn:
        conn.execute("alter table marts.profile_events drop column updated_at")
        conn.execute("alter table marts.profile_events drop column loaded_at")
    write(tmp_path, traits=TRAITS.replace("""      - name: plan_total
        type: sum
        event: Signed Up
        property: plan
""", ""))
    first = landed_checks.check_definitions_before_build(landed, tmp_path)
    assert first and landed_checks.check_definitions_before_build(landed, tmp_path) == first
