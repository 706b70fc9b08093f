"""Trait and audience definitions are checked before any SQL runs, with errors that name the definition."""

import re

import pytest
import yaml

from orchestration.computed.compiler import (
    TIME_EDGES_META,
    _models_yaml,
    audience_window_edges,
    compile_definitions,
    describe_filter,
    trait_group_sql,
    window_edges,
)
from orchestration.computed.schema import DefinitionError, load_definitions
from orchestration.core import settings

TRAITS = {"trait_groups": {"commerce": {"traits": [
    {"name": "revenue", "type": "sum", "event": "Order Completed", "property": "revenue"},
    {"name": "plan_name", "type": "last", "message_type": "identify", "property": "plan"},
]}}}


def load(tmp_path, traits=None, audiences=None):
    (tmp_path / "traits.yml").write_text(yaml.safe_dump(traits if traits is not None else TRAITS))
    (tmp_path / "audiences.yml").write_text(yaml.safe_dump({"audiences": audiences or {}}))
    return load_definitions(tmp_path / "traits.yml", tmp_path / "audiences.yml")


@pytest.mark.parametrize("audiences, message", [
    ({"big": {"condition": {"trait": "revenue", "op": "greater", "value": 1}}},
     "audience 'big', condition: unknown operator 'greater'"),
    ({"big": {"condition": {"trait": "revnue", "op": ">", "value": 1}}},
     "audience 'big', condition: unknown computed trait 'revnue'"),
    ({"big": {"condition": {"trait": "revenue", "op": ">", "value": "lots"}}},
     "trait 'revenue' is compared as a number, but 'lots' is not one"),
    ({"big": {"condition": {"trait": "revenue", "op": "contains", "value": "1"}}},
     "operator 'contains' does not apply to a number"),
    ({"x": {"condition": {"event": "Order", "where": [{"property": "size", "type": "colour", "op": "=", "value": 1}]}}},
     "audience 'x', condition, where, all[1]: unknown type 'colour'"),
    ({"x": {"condition": {"all": [{"event": "Order"}, {"audience": "y"}]}},
      "y": {"condition": {"audience": "x"}}},
     "audiences depend on each other in a cycle"),
    ({"x": {"condition": {"funnel": [{"event": "A"}, {"event": "B", "performed": False}, {"event": "C"}]}}},
     "funnel step 2: 'then did not perform' (performed: false) can only be the last step"),
    ({"x": {"condition": {"event": "Order", "window": {"within_days": 0}}}},
     "audience 'x', condition, window: within_days must be a positive whole number of days"),
    ({"x": {"condition": {"event": "Order", "count": {"op": ">=", "value": "two"}}}},
     "audience 'x', condition, count: count 'events' is compared as a number"),
    ({"x": {"condition": {"profile": "shoe_size", "op": "exists"}}}, "unknown profile field 'shoe_size'"),
    ({"x": {"condition": {"event": "Order", "where": [{"field": "event_at", "op": "before", "value": "soon"}]}}},
     "'before' needs a date or time like 2024-06-01"),
    ({"x": {"condition": {"colour": "red"}}}, "a condition is an event, a funnel, a trait"),
    ({"x": {"condition": {"event": "A"}, "export_traits": ["nope"]}}, "export_traits: unknown computed trait 'nope'"),
])
def test_wrong_audiences_name_the_definition_and_the_problem(tmp_path, audiences, message):
    with pytest.raises(DefinitionError) as error:
        load(tmp_path, audiences=audiences)
    assert message in str(error.value)


@pytest.mark.parametrize("trait, message", [
    ({"name": "x", "type": "median", "event": "A"}, "trait 'x' (group 'g'): unknown trait type 'median'"),
    ({"name": "x", "type": "sum", "event": "A"}, "a sum trait needs a 'property'"),
    ({"name": "x", "type": "sum", "event": "A", "property": "p", "value_type": "string"}, "a sum trait needs a number property"),
    ({"name": "X-1", "type": "count"}, "a trait name is lower case letters"),
    ({"name": "x", "type": "count", "window": {"between_days": [60, 30]}}, "between_days must be [N, M]"),
    ({"name": "x", "type": "sql", "sql": "count(*)"}, "a sql trait needs 'sql'"),
    ({"name": "x", "type": "count", "colour": "red"}, "unknown key(s) colour"),
    ({"name": "x", "type": "most_frequent", "field": "colour"}, "unknown event field 'colour'"),
])
def test_wrong_traits_name_the_definition_and_the_problem(tmp_path, trait, message):
    with pytest.raises(DefinitionError) as error:
        load(tmp_path, traits={"trait_groups": {"g": {"traits": [trait]}}})
    assert message in str(error.value)


def test_operator_spellings_and_inferred_types(tmp_path):
    definitions = load(tmp_path, audiences={"x": {"condition": {"all": [
        {"trait": "revenue", "op": ">=", "value": 10},
        {"custom_trait": "vip", "op": "=", "value": True},
        {"event": "Search", "where": {"any": [{"property": "q", "op": "starts_with", "value": "red"},
                                              {"field": "event_at", "op": "after", "value": "2024-01-01"}]}},
    ]}}})
    first, second, third = definitions.audiences[0].condition.parts
    assert (first.operator, first.value_type) == ("gte", "number")
    assert (second.operator, second.value_type) == ("equals", "boolean")
    assert describe_filter(third.filter) == (
        "'Search' where (property q starts_with \"red\") or (field event_at after \"2024-01-01\")")


def test_the_shipped_definitions_compile(tmp_path):
    definitions = compile_definitions(settings.DBT_PROJECT_DIR)
    generated = settings.DBT_PROJECT_DIR / "models" / "computed"
    assert {p.name for p in generated.glob("audience__*.sql")} == {f"audience__{a.name}.sql" for a in definitions.audiences}
    assert (generated / "profile_traits.sql").exists() and (generated / "_computed__models.yml").exists()


def _group(tmp_path, traits):
    return load(tmp_path, {"trait_groups": {"g": {"traits": traits}}}).traits


def test_window_edges_are_where_time_alone_changes_a_trait(tmp_path):
    traits = _group(tmp_path, [
        {"name": "orders", "type": "count", "event": "Order Completed"},
        {"name": "recent", "type": "count", "event": "Order Completed", "window": {"within_days": 90}},
        {"name": "earlier", "type": "count", "event": "Cart", "window": {"between_days": [30, 60]}},
        {"name": "days", "type": "sql", "sql": "count(distinct cast(event_at as date))", "data_type": "integer"},
    ])
    assert window_edges(traits) == [0, 30, 60, 90]
    assert window_edges(traits[:1]) == [0], "an event counts from its time on: edge 0"


def test_an_audience_s_window_edges_are_its_windows_and_funnel_delays(tmp_path):
    audiences = load(tmp_path, audiences={
        "recent": {"condition": {"all": [
            {"event": "Order Completed", "window": {"within_days": 14}},
            {"not": {"event": "Refund", "window": {"between_days": [3, 45]}}},
            {"trait": "revenue", "op": ">", "value": 1}]}},
        "funnel": {"condition": {"funnel": [
            {"event": "Viewed"}, {"event": "Added", "within_days": 2}, {"event": "Ordered", "performed": False,
                                                                        "within_days": 5}],
            "window": {"within_days": 30}}},
        "traits_only": {"condition": {"trait": "revenue", "op": ">", "value": 1}},
    }).audiences
    assert {a.name: audience_window_edges(a) for a in audiences} == {
        "recent": [0, 3, 14, 45], "funnel": [0, 2, 5, 30], "traits_only": [0]}


def test_each_generated_model_that_reads_the_clock_names_its_edges_in_its_meta(tmp_path):
    """What the build reads to skip the time-dependent models while no event crosses an edge
    (orchestration/location/build_state.py); a group with a clock-reading `sql` trait names none."""
    compile_definitions(settings.DBT_PROJECT_DIR)
    models = yaml.safe_load((settings.DBT_PROJECT_DIR / "models" / "computed" / "_computed__models.yml").read_text())
    edges = {m["name"]: m.get("config", {}).get("meta", {}).get(TIME_EDGES_META) for m in models["models"]}
    assert edges["traits__commerce"] == [0, 30, 60, 90] and edges["traits__engagement"] == [0]
    assert edges["audience__cart_abandoners"] == [0, 1] and edges["audience__high_value_customers"] == [0]
    assert edges["profile_traits"] is None  # it does not read the clock
    definitions = load(tmp_path, {"trait_groups": {"g": {"traits": [
        {"name": "clocked", "type": "sql", "sql": "max(now() - event_at)", "data_type": "integer"}]}}})
    clocked = _models_yaml(definitions, {"g": definitions.traits}, {})["models"][0]
    assert clocked["name"] == "traits__g" and "config" not in clocked


@pytest.mark.parametrize("sql", ["count(*) filter (where event_at > now() - interval 7 day)",
                                 "max(CURRENT_DATE - cast(event_at as date))", "sum(epoch(current_timestamp))"])
def test_an_sql_trait_that_reads_the_clock_makes_its_group_a_table(tmp_path, sql):
    traits = _group(tmp_path, [{"name": "orders", "type": "count", "event": "Order Completed"},
                               {"name": "clocked", "type": "sql", "sql": sql, "data_type": "integer"}])
    assert window_edges(traits) is None
    model = trait_group_sql("g", traits)
    assert "materialized='table'" in model and "changed" not in model


def test_a_trait_group_builds_incrementally_from_the_profiles_that_changed(tmp_path):
    traits = _group(tmp_path, [{"name": "recent", "type": "count", "event": "Order Completed",
                                "window": {"within_days": 90}}])
    model = trait_group_sql("g", traits)
    assert "materialized='incremental'" in model and "incremental_strategy='replace_keys'" in model
    assert "profiles_with_events_across_window_edges(this, [0, 90])" in model
    assert "profiles_changed_since(this, profile_changes)" in model
    other = trait_group_sql("g", _group(tmp_path, [{"name": "recent", "type": "count", "event": "Order Completed",
                                                    "window": {"within_days": 30}}]))
    fingerprint = re.compile(r"set fingerprint = '(\w+)'")
    assert fingerprint.search(model).group(1) != fingerprint.search(other).group(1), "other definitions, other rows"


def test_a_property_that_is_not_the_number_a_trait_reads_is_null_not_an_error(tmp_path):
    """One event with "revenue": "N/A" failed the trait model (Could not convert string 'N/A' to
    DOUBLE) and every model after it. The compiled cast, rendered by dbt on DuckDB, gives null."""
    import json
    import os
    import subprocess

    from orchestration.computed.compiler import _typed, emit, raw

    values = ["N/A", "12.5", " 7 ", "1e3", ""]
    select = ", ".join(f"{emit(_typed(raw(repr(v)), 'number'))} as v{i}" for i, v in enumerate(values))
    env = {**os.environ, "DUCKDB_PATH": str(tmp_path / "cast.duckdb"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    shown = subprocess.run(
        [settings.DBT_EXECUTABLE, "show", "--inline", f"select {select}", "--output", "json", "--quiet",
         "--profiles-dir", str(settings.DBT_PROFILES_DIR), "--target-path", str(tmp_path / "target"),
         "--log-path", str(tmp_path / "logs")],
        cwd=settings.DBT_PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-2000:]
    [row] = json.loads(shown.stdout)["show"]
    assert [row[f"v{i}"] for i in range(len(values))] == [None, 12.5, 7.0, 1000.0, None]
