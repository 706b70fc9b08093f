"""Computed traits and audiences on hand-written fixtures, with every expected value worked out by hand.

The test runs its own definitions: a copy of the dbt project with the YAML below and `as_of`
2024-07-01, through the real main job in a subprocess (the Dagster graph follows the definitions).
A second run adds a late order and checks the membership history and the export changes.
"""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from orchestration.core import settings
from tests.conftest import WAREHOUSE_FILE_NAME, copy_dbt_project

AS_OF = "2024-07-01 00:00:00"


def event(message_id, at, user=None, anon=None, type_="track", name=None, **fields):
    message = {"type": type_, "messageId": message_id, "timestamp": at}
    message.update({"userId": user} if user else {})
    message.update({"anonymousId": anon} if anon else {})
    message.update({"event" if type_ == "track" else "name": name} if name else {})
    message.update(fields)
    return message


MESSAGES = [
    # Alice: two devices and a user id; three orders; three pages; a cart she ordered the next day.
    event("a1", "2024-01-15T10:00:00Z", "alice", "alice-web", name="Order Completed", properties={"revenue": 80}),
    event("a2", "2024-05-10T10:00:00Z", "alice", "alice-phone", name="Order Completed", properties={"revenue": 30}),
    event("a3", "2024-06-20T10:00:00Z", "alice", "alice-web", name="Order Completed", properties={"revenue": 120}),
    event("a4", "2024-06-19T12:00:00Z", "alice", "alice-web", name="Product Added To Cart", properties={"product_id": "sku-1"}),
    event("a5", "2024-06-01T08:00:00Z", None, "alice-web", "page", "Home"),
    event("a6", "2024-06-02T08:00:00Z", None, "alice-phone", "page", "Pricing"),
    event("a7", "2024-06-03T08:00:00Z", None, "alice-web", "page", "Home"),
    event("a8", "2024-06-01T07:00:00Z", "alice", "alice-phone", "identify", traits={"plan": "pro"}),
    # Bob: ordered before he added to the cart, never after: an abandoner.
    event("b1", "2024-06-05T10:00:00Z", "bob", name="Order Completed", properties={"revenue": 10}),
    event("b2", "2024-06-10T10:00:00Z", "bob", name="Product Added To Cart", properties={"product_id": "sku-2"}),
    event("b3", "2024-06-04T10:00:00Z", "bob", type_="page", name="Docs"),
    event("b4", "2024-06-04T09:00:00Z", "bob", type_="identify", traits={"plan": "free"}),
    # Carol: added to the cart half a day before as_of (the day to order has not passed); views, searches.
    event("c1", "2024-06-30T12:00:00Z", "carol", name="Product Added To Cart", properties={"product_id": "sku-3"}),
    event("c2", "2024-06-15T10:00:00Z", "carol", name="Product Viewed", properties={"product_id": "sku-3"}),
    event("c3", "2024-06-15T11:00:00Z", "carol", name="Product Viewed", properties={"product_id": "sku-4"}),
    event("c4", "2024-06-15T12:00:00Z", "carol", name="Product Viewed", properties={"product_id": "sku-3"}),
    event("c5", "2024-06-16T10:00:00Z", "carol", name="Search Performed",
          properties={"query": "red shoes", "results": 12, "filter": "size 9", "in_stock": True}),
    event("c6", "2024-06-17T10:00:00Z", "carol", name="Search Performed", properties={"query": "blue hat", "results": 0}),
    # Dave: anonymous, gave an e-mail; an abandoned cart.
    event("d1", "2024-06-01T10:00:00Z", None, "dave-web", name="Product Added To Cart", properties={"product_id": "sku-5"}),
    event("d2", "2024-06-01T10:05:00Z", None, "dave-web", "identify", traits={"email": "dave@dave.example"}),
    # Erin: two big orders, one recent; an order after as_of that must not count.
    event("e1", "2024-03-01T10:00:00Z", "erin", name="Order Completed", properties={"revenue": 200}),
    event("e2", "2024-06-25T10:00:00Z", "erin", name="Order Completed", properties={"revenue": 200}),
    event("e3", "2024-07-05T10:00:00Z", "erin", name="Order Completed", properties={"revenue": 999}),
    # Frank: what the front door lets through but must not stop the build nor pass for real values.
    # An order whose revenue is 'N/A' (it counts as an order; its revenue is no number) ...
    event("f1", "2024-06-10T10:00:00Z", "frank", name="Order Completed", properties={"revenue": "N/A"}),
    # ... a time that is not one and a device clock in 9999: the next time of the message stands ...
    event("f2", "not a date", "frank", None, "page", "Home", receivedAt="2024-06-11T10:00:00Z"),
    event("f3", "9999-12-31T00:00:00Z", "frank", None, "page", "Home", receivedAt="2024-06-12T10:00:00Z"),
    # ... and one message id twice with different content (the first stands).
    event("f4", "2024-06-13T10:00:00Z", "frank", name="Product Viewed", properties={"product_id": "sku-8"}),
    event("f4", "2024-06-13T10:00:00Z", "frank", name="Product Viewed", properties={"product_id": "sku-9"}),
]
LATE_MESSAGES = [  # Bob did order the afternoon after his cart: he leaves the abandoners and becomes high value.
    event("b5", "2024-06-10T18:00:00Z", "bob", name="Order Completed", properties={"revenue": 250}),
]


def count(name, event_name=None, where=None, **more):
    trait = {"name": name, "type": "count", **({"event": event_name} if event_name else {}), **more}
    return {**trait, "where": where} if where else trait


def searches(name, *conditions):
    return count(name, "Search Performed", list(conditions))


TRAITS = {"trait_groups": {
    "commerce": {"traits": [
        count("orders", "Order Completed"),
        {"name": "revenue", "type": "sum", "event": "Order Completed", "property": "revenue"},
        {"name": "avg_order", "type": "avg", "event": "Order Completed", "property": "revenue"},
        {"name": "min_order", "type": "min", "event": "Order Completed", "property": "revenue"},
        {"name": "max_order", "type": "max", "event": "Order Completed", "property": "revenue"},
        {"name": "last_order_at", "type": "last", "event": "Order Completed", "value": "timestamp"},
        {"name": "first_order_revenue", "type": "first", "event": "Order Completed", "property": "revenue",
         "value_type": "number"},
        count("orders_last_30_days", "Order Completed", window={"within_days": 30}),
        count("orders_30_to_60_days_ago", "Order Completed", window={"between_days": [30, 60]}),
        count("big_orders", "Order Completed", [{"property": "revenue", "op": ">=", "value": 100}]),
        {"name": "carts", "type": "unique_list", "event": "Product Added To Cart", "property": "product_id"},
    ]},
    "engagement": {"traits": [
        {"name": "favourite_page", "type": "most_frequent", "message_type": "page", "field": "event_name",
         "min_frequency": 2},
        {"name": "first_page", "type": "first", "message_type": "page", "field": "event_name"},
        {"name": "products_viewed", "type": "unique_count", "event": "Product Viewed", "property": "product_id"},
        {"name": "active_days", "type": "sql", "sql": "count(distinct cast(event_at as date))", "data_type": "integer"},
    ]},
    "operators": {"traits": [
        searches("q_equals", {"property": "query", "op": "equals", "value": "blue hat"}),
        searches("q_not_equals", {"property": "query", "op": "!=", "value": "blue hat"}),
        searches("q_contains", {"property": "query", "op": "contains", "value": "shoe"}),
        searches("q_not_contains", {"property": "query", "op": "not_contains", "value": "shoe"}),
        searches("q_starts_with", {"property": "query", "op": "starts_with", "value": "blue"}),
        searches("q_ends_with", {"property": "query", "op": "ends_with", "value": "shoes"}),
        searches("q_in", {"property": "query", "op": "in", "value": ["red shoes", "green"]}),
        searches("r_lt", {"property": "results", "op": "<", "value": 5}),
        searches("r_lte", {"property": "results", "op": "<=", "value": 12}),
        searches("r_gt", {"property": "results", "op": ">", "value": 0}),
        searches("r_gte", {"property": "results", "op": ">=", "value": 12}),
        searches("f_exists", {"property": "filter", "op": "exists"}),
        searches("f_not_exists", {"property": "filter", "op": "not_exists"}),
        searches("s_true", {"property": "in_stock", "op": "equals", "value": True}),
        searches("at_before", {"field": "event_at", "op": "before", "value": "2024-06-17"}),
        searches("at_after", {"field": "event_at", "op": "after", "value": "2024-06-16T12:00:00"}),
        searches("any_of", {"any": [{"property": "results", "op": "=", "value": 0},
                                    {"property": "filter", "op": "exists"}]}),
        searches("not_of", {"not": {"property": "query", "op": "contains", "value": "hat"}}),
    ]},
}}
AUDIENCES = {"audiences": {
    "high_value": {"export_traits": ["revenue"], "condition": {"all": [
        {"trait": "revenue", "op": ">=", "value": 200},
        {"event": "Order Completed", "count": {"op": ">=", "value": 2}}]}},
    "recent_big_spenders": {"condition": {"event": "Order Completed", "window": {"within_days": 30},
                                          "where": [{"property": "revenue", "op": ">=", "value": 100}]}},
    "three_orders_and_three_pages": {"condition": {"all": [
        {"event": "Order Completed", "count": {"op": "=", "value": 3}},
        {"message_type": "page", "count": {"op": "=", "value": 3}}]}},
    "cart_abandoners": {"condition": {"funnel": [
        {"event": "Product Added To Cart"}, {"event": "Order Completed", "performed": False, "within_days": 1}]}},
    "cart_abandoners_anonymous_too": {"include_anonymous": True, "condition": {"funnel": [
        {"event": "Product Added To Cart"}, {"event": "Order Completed", "performed": False, "within_days": 1}]}},
    "viewed_then_searched": {"condition": {"funnel": [
        {"event": "Product Viewed"}, {"event": "Search Performed", "within_days": 2}]}},
    "searched_then_viewed": {"condition": {"funnel": [
        {"event": "Search Performed"}, {"event": "Product Viewed"}]}},
    "plan_but_not_high_value": {"condition": {"all": [
        {"custom_trait": "plan", "op": "in", "value": ["pro", "free"]}, {"not": {"audience": "high_value"}}]}},
    "shoppers_or_dave": {"include_anonymous": True, "condition": {"any": [
        {"trait": "q_contains", "op": ">", "value": 0}, {"profile": "email", "op": "ends_with", "value": "@dave.example"}]}},
    "never_ordered": {"condition": {"event": "Order Completed", "performed": False}},
}}

EXPECTED_TRAITS = {  # by user id (dave by his anonymous id); NaN = no value
    "alice": dict(orders=3, revenue=230, avg_order=230 / 3, min_order=30, max_order=120,
                  last_order_at=pd.Timestamp("2024-06-20 10:00"), first_order_revenue=80, orders_last_30_days=1,
                  orders_30_to_60_days_ago=1, big_orders=1, carts='["sku-1"]', favourite_page="Home",
                  first_page="Home", products_viewed=0, active_days=7),
    "bob": dict(orders=1, revenue=10, max_order=10, orders_last_30_days=1, orders_30_to_60_days_ago=0, big_orders=0,
                carts='["sku-2"]', favourite_page=None, first_page="Docs", active_days=3),
    "carol": dict(orders=0, revenue=None, last_order_at=None, carts='["sku-3"]', products_viewed=2, active_days=4,
                  q_equals=1, q_not_equals=1, q_contains=1, q_not_contains=1, q_starts_with=1, q_ends_with=1, q_in=1,
                  r_lt=1, r_lte=2, r_gt=1, r_gte=1, f_exists=1, f_not_exists=1, s_true=1, at_before=1, at_after=1,
                  any_of=2, not_of=1),
    "dave-web": dict(orders=0, carts='["sku-5"]', q_contains=0),
    "erin": dict(orders=2, revenue=400, avg_order=200, orders_last_30_days=1, big_orders=2, first_order_revenue=200),
    "frank": dict(orders=1, revenue=None, avg_order=None, min_order=None, max_order=None, big_orders=0,
                  last_order_at=pd.Timestamp("2024-06-10 10:00"), favourite_page="Home", products_viewed=1,
                  active_days=4),
}
EXPECTED_MEMBERS = {
    "high_value": {"alice", "erin"},
    "recent_big_spenders": {"alice", "erin"},  # a "within N days" window that selects what it should
    "three_orders_and_three_pages": {"alice"},  # two event conditions, two devices: no inflated counts
    "cart_abandoners": {"bob"},  # Bob's order came before the cart; Alice ordered in time; Carol's day is not over
    "cart_abandoners_anonymous_too": {"bob", "dave-web"},
    "viewed_then_searched": {"carol"},
    "searched_then_viewed": set(),  # order matters
    "plan_but_not_high_value": {"bob"},
    "shoppers_or_dave": {"carol", "dave-web"},
    "never_ordered": {"carol"},  # Dave is anonymous
}


def run_job(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestration.cli", "run"], cwd=settings.PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


PEOPLE = ["alice", "bob", "carol", "erin", "dave-web", "frank"]


def read(database: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(database), read_only=True) as conn:
        names = conn.execute("select identifier_value, profile_id from marts.profile_identifiers "
                             "where identifier_type in ('user_id', 'anonymous_id')").df()
        person = dict(zip(names.profile_id[names.identifier_value.isin(PEOPLE)],
                          names.identifier_value[names.identifier_value.isin(PEOPLE)]))
        traits = conn.execute("select * exclude (carts), carts::varchar as carts from marts.profile_traits").df()
        tables = {
            "traits": traits.assign(person=traits.profile_id.map(person)).set_index("person"),
            "members": conn.execute("select * from marts.audience_members").df(),
            "reasons": conn.execute("select * from marts.audience_condition_results").df(),
            "history": conn.execute("select * from marts.audience_membership_history").df(),
        }
    for name in ("members", "reasons", "history"):
        tables[name]["person"] = tables[name].profile_id.map(person)
    return tables


@pytest.fixture(scope="session")
def computed(tmp_path_factory):
    project = tmp_path_factory.mktemp("dbt-project") / "dbt_project"
    copy_dbt_project(project)
    (project / "definitions" / "traits.yml").write_text(yaml.safe_dump(TRAITS, sort_keys=False))
    (project / "definitions" / "audiences.yml").write_text(yaml.safe_dump(AUDIENCES, sort_keys=False))
    config = project / "dbt_project.yml"
    config.write_text(config.read_text().replace("  as_of: null", f"  as_of: '{AS_OF}'"))
    landing = tmp_path_factory.mktemp("computed-landing")
    (landing / "events").mkdir()
    (landing / "events" / "fixtures.jsonl").write_text("".join(json.dumps(m) + "\n" for m in MESSAGES))
    database = tmp_path_factory.mktemp("computed-db") / WAREHOUSE_FILE_NAME
    exports = tmp_path_factory.mktemp("exports")
    env = {**os.environ, "DBT_PROJECT_DIR": str(project), "LANDING_DIR": str(landing),
           "DUCKDB_PATH": str(database), "EXPORT_DIR": str(exports)}
    env.pop("DAGSTER_HOME", None)
    first = run_job(env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    before = read(database)
    (landing / "events" / "late.jsonl").write_text("".join(json.dumps(m) + "\n" for m in LATE_MESSAGES))
    second = run_job(env)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    return {"before": before, "after": read(database), "exports": exports, "project": project, "database": database,
            "env": env}


LATER = "2024-07-25 00:00:00"


def trait_tables(database: Path) -> dict[str, pd.DataFrame]:
    """Every trait group table and profile_traits, by person (profile ids aside), as text."""
    with duckdb.connect(str(database), read_only=True) as conn:
        names = [row[0] for row in conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = 'traits' or table_name = 'profile_traits' order by 1").fetchall()]
        people = ("select profile_id, min(identifier_value) as person from marts.profile_identifiers "
                  "where identifier_type in ('user_id', 'anonymous_id') group by 1")
        tables = {}
        for name in names:
            frame = conn.execute(f"select people.person, t.* exclude (profile_id) from {name} as t "
                                 f"left join ({people}) as people using (profile_id)").df()
            tables[name] = frame.astype(str).sort_values(list(frame.columns)).reset_index(drop=True)
    return tables


@pytest.fixture(scope="session")
def computed_later(computed, tmp_path_factory):
    """The warehouse after the second run, built again at a later as_of (24 days on: windows move
    over events that stay as they were), and a warehouse built at once at that as_of."""
    project = tmp_path_factory.mktemp("dbt-project-later") / "dbt_project"
    shutil.copytree(computed["project"], project, ignore=shutil.ignore_patterns("target", "logs"))
    config = project / "dbt_project.yml"
    config.write_text(config.read_text().replace(f"  as_of: '{AS_OF}'", f"  as_of: '{LATER}'"))
    incremental = tmp_path_factory.mktemp("computed-db-later") / WAREHOUSE_FILE_NAME
    shutil.copytree(computed["database"].parent, incremental.parent, dirs_exist_ok=True)
    at_once = tmp_path_factory.mktemp("computed-db-at-once") / WAREHOUSE_FILE_NAME
    for database in (incremental, at_once):
        env = {**computed["env"], "DBT_PROJECT_DIR": str(project), "DUCKDB_PATH": str(database),
               "EXPORT_DIR": str(tmp_path_factory.mktemp("exports-later"))}
        outcome = run_job(env)
        assert outcome.returncode == 0, outcome.stdout[-4000:] + outcome.stderr[-4000:]
    return {"incremental": trait_tables(incremental), "at_once": trait_tables(at_once)}


@pytest.mark.parametrize("person", EXPECTED_TRAITS)
def test_each_trait_type_operator_and_window(computed, person):
    row = computed["before"]["traits"].loc[person]
    for trait, expected in EXPECTED_TRAITS[person].items():
        actual = row[trait]
        if expected is None:
            assert actual is None or (isinstance(actual, float) and math.isnan(actual)) or pd.isna(actual), trait
        elif isinstance(expected, float):
            assert actual == pytest.approx(expected), trait
        else:
            assert actual == expected, (person, trait, actual)


@pytest.mark.parametrize("audience", EXPECTED_MEMBERS)
def test_audience_members(computed, audience):
    members = computed["before"]["members"]
    assert set(members[members.audience == audience].person) == EXPECTED_MEMBERS[audience]


def test_explanations_say_which_conditions_held_and_why(computed):
    reasons = computed["before"]["reasons"]
    bob = reasons[(reasons.audience == "high_value") & (reasons.person == "bob")].sort_values("condition_number")
    assert list(bob.held) == [False, False]
    assert list(bob.decided_by) == ["10.0", "1 event(s)"]
    assert bob.condition.iloc[0] == 'trait revenue gte 200'
    carol = reasons[(reasons.audience == "cart_abandoners") & (reasons.person == "carol")].iloc[0]
    assert (carol.held, carol.decided_by) == (False, "not completed")
    alice = reasons[(reasons.audience == "plan_but_not_high_value") & (reasons.person == "alice")]
    assert list(alice.sort_values("condition_number").condition) == [
        'custom_trait plan in ["pro", "free"]', "(wanted false) member of audience high_value"]


def test_history_records_who_entered_and_left(computed):
    before, after = computed["before"]["history"], computed["after"]["history"]
    assert set(before.change) == {"entered"}
    assert len(before) == sum(len(m) for m in EXPECTED_MEMBERS.values())
    new = after[~after.set_index(["audience", "profile_id", "change", "changed_at"]).index.isin(
        before.set_index(["audience", "profile_id", "change", "changed_at"]).index)]
    assert set(zip(new.audience, new.person, new.change)) == {
        ("cart_abandoners", "bob", "exited"),
        ("cart_abandoners_anonymous_too", "bob", "exited"),
        ("plan_but_not_high_value", "bob", "exited"),
        ("high_value", "bob", "entered"),
        ("recent_big_spenders", "bob", "entered"),  # 250 on 10 June, within 30 days of as_of
    }


def test_exports_hold_members_and_the_changes_since_the_last_export(computed):
    folder = computed["exports"] / "high_value"
    with open(folder / "members.csv", newline="") as handle:
        members = list(csv.DictReader(handle))
    assert {row["user_id"] for row in members} == {"alice", "erin", "bob"}
    assert set(members[0]) == {"profile_id", "user_id", "email", "phone", "revenue"}
    with duckdb.connect() as conn:
        assert conn.execute(f"select count(*) from read_parquet('{folder / 'members.parquet'}')").fetchone()[0] == 3
    first, second = sorted((folder / "changes").glob("*.csv"))
    with open(first, newline="") as handle:
        assert {(r["change"], r["user_id"]) for r in csv.DictReader(handle)} == {("entered", "alice"), ("entered", "erin")}
    with open(second, newline="") as handle:
        assert [(r["change"], r["user_id"]) for r in csv.DictReader(handle)] == [("entered", "bob")]


def test_a_later_as_of_recomputes_what_time_changed_and_keeps_the_rest(computed_later):
    incremental, at_once = computed_later["incremental"], computed_later["at_once"]
    # time alone: Alice's order of 20 June left the last 30 days and entered 30 to 60 days ago
    alice = incremental["marts.profile_traits"].set_index("person").loc["alice"]
    assert (alice.orders_last_30_days, alice.orders_30_to_60_days_ago) == ("0", "1")
    # the build was incremental: some rows were recomputed at the later as_of, others kept
    computed_at = {pd.Timestamp(value) for name, table in incremental.items() if name.startswith("traits.")
                   for value in table.as_of}
    assert computed_at == {pd.Timestamp(AS_OF), pd.Timestamp(LATER)}
    assert set(incremental) == set(at_once)
    for name, table in incremental.items():
        compared = [c for c in table.columns if c not in ("as_of", "updated_at")]
        pd.testing.assert_frame_equal(
            table[compared].sort_values(compared).reset_index(drop=True),
            at_once[name][compared].sort_values(compared).reset_index(drop=True), obj=name)


def test_values_that_are_not_what_they_claim_are_counted_and_the_build_goes_on(computed):
    """Frank's order with revenue 'N/A' used to fail the trait models (18 skipped, exit 1); his
    unusable times used to stand as event times. The WARN checks name them by message id."""
    from orchestration.computed.schema import load_definitions
    from orchestration.location import checks

    project = computed["project"] / "definitions"
    traits = load_definitions(project / "traits.yml", project / "audiences.yml").traits
    with duckdb.connect(str(computed["database"]), read_only=True) as conn:
        statuses = dict(conn.execute("select message_id, event_at_status from marts.profile_events "
                                     "where message_id like 'f%' or message_id = 'a1'").fetchall())
        times = conn.execute("select message_id, event_at from marts.profile_events where message_id in ('f2', 'f3') "
                             "order by 1").fetchall()
        assert conn.execute(checks.EVENT_TIMES_SQL).fetchall() == [("out_of_range", 1, ["f3"]), ("unparsable", 1, ["f2"])]
        assert conn.execute(checks.conflicting_copies_sql(checks._MESSAGE_RAW_TABLES)).fetchone() == (1, 2, ["f4"])
        by_trait = {trait: (count, examples) for trait, count, examples in conn.execute(*checks.trait_values_sql(traits)).fetchall()}
    assert statuses == {"a1": "ok", "f1": "ok", "f2": "unparsable", "f3": "out_of_range", "f4": "ok"}
    assert [str(at) for _, at in times] == ["2024-06-11 10:00:00", "2024-06-12 10:00:00"]  # receivedAt stood in
    assert by_trait == {name: (1, ["f1"]) for name in
                        ("revenue", "avg_order", "min_order", "max_order", "first_order_revenue", "big_orders")}
