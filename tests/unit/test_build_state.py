"""What a build must do (orchestration/location/build_state.py): state follows code, and a build
with nothing new builds only what time changes."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta

import duckdb
import pytest

from orchestration.computed.compiler import TIME_EDGES_META
from orchestration.core.warehouse import data_version
from orchestration.location import build_state
from orchestration.location.build_state import Recorded, plan_build
from orchestration.location.project import dbt_project


def _macro(name: str, sql: str, calls: list[str] = ()) -> dict:
    return {"name": name, "macro_sql": sql, "depends_on": {"macros": [f"macro.p.{c}" for c in calls]}}


def _model(name: str, parents: list[str] = (), macros: list[str] = (), materialized: str = "table",
           **config) -> dict:
    return {"resource_type": "model", "name": name, "raw_code": f"select 1 as {name}", "language": "sql",
            "config": {"materialized": materialized, **config}, "columns": {},
            "depends_on": {"nodes": [f"model.p.{p}" for p in parents], "macros": [f"macro.p.{m}" for m in macros]}}


# raw → stg (incremental) → ids (history) → profiles (incremental) → traits (reads as_of) → audience
MANIFEST = {
    "macros": {
        "macro.p.as_of": _macro("as_of", "{{ var('as_of') }}"),
        "macro.p.rules": _macro("rules", "{{ var('identity_rules') }}"),
        "macro.p.window": _macro("window", "{{ as_of() }}", ["as_of"]),
    },
    "nodes": {
        "model.p.stg": _model("stg", materialized="incremental"),
        "model.p.ids": _model("ids", ["stg"], ["rules"], materialized="incremental", full_refresh=False),
        "model.p.profiles": _model("profiles", ["ids", "stg"], materialized="incremental"),
        "model.p.traits": _model("traits", ["profiles"], ["window"], meta={TIME_EDGES_META: [0, 7]}),
        "model.p.audience": _model("audience", ["traits"]),
        "test.p.not_null": {"resource_type": "test", "name": "not_null", "depends_on": {"nodes": ["model.p.stg"]}},
    },
}
VARS = {"identity_rules": {"blocklist": ["x"]}, "as_of": None, "hash_pii_in_exports": False}


def _recorded(manifest=MANIFEST, dbt_vars=VARS, version="v1") -> dict[str, Recorded]:
    plan = plan_build(manifest, dbt_vars, {}, version)
    return {uid.split(".")[-1]: Recorded(plan.code[uid], plan.lineage[uid], version) for uid in plan.code}


def test_an_edited_model_is_rebuilt_from_scratch_with_what_reads_it_but_history_is_kept():
    edited = copy.deepcopy(MANIFEST)
    edited["nodes"]["model.p.stg"]["raw_code"] = "select 2 as stg"
    plan = plan_build(edited, VARS, _recorded(), "v1")
    assert plan.code_changed == ["stg"]
    assert plan.rebuilt_from_scratch == ["profiles", "stg"]  # incremental ones; tables rebuild anyway
    assert plan.history_kept == ["ids"]
    assert plan.time_dependent_only is None and plan.left_out == []
    assert plan.summary() == ["code changed: stg; rebuilt from scratch: stg and 1 model downstream; "
                              "history kept: ids"]


def test_a_var_reaches_only_the_models_whose_macros_read_it():
    rules_changed = plan_build(MANIFEST, {**VARS, "identity_rules": {"blocklist": ["y"]}}, _recorded(), "v1")
    assert rules_changed.code_changed == ["ids"]
    assert rules_changed.rebuilt_from_scratch == ["profiles"]
    # a var no model reads, and as_of (time, which the time-dependent models follow themselves), change nothing
    for other in ({**VARS, "hash_pii_in_exports": True}, {**VARS, "as_of": "2024-06-01"}):
        plan = plan_build(MANIFEST, other, _recorded(), "v1")
        assert plan.code_changed == [] and plan.rebuilt_from_scratch == []


def test_a_changed_macro_or_config_is_a_code_change():
    edited = copy.deepcopy(MANIFEST)
    edited["macros"]["macro.p.window"]["macro_sql"] += " - 1"
    assert plan_build(edited, VARS, _recorded(), "v1").code_changed == ["traits"]
    edited = copy.deepcopy(MANIFEST)
    edited["nodes"]["model.p.audience"]["config"]["materialized"] = "view"
    assert plan_build(edited, VARS, _recorded(), "v1").code_changed == ["audience"]


def test_with_nothing_new_only_what_time_changes_is_built():
    plan = plan_build(MANIFEST, VARS, _recorded(), "v1")
    assert plan.time_dependent_only == ["audience", "traits"]
    assert plan.left_out == ["ids", "profiles", "stg"]
    assert plan.summary() == ["nothing new landed and no code changed: building only the 2 models that change "
                              "as time passes; 3 left as they are"]


LAST_AS_OF, NOW = datetime(2024, 6, 1, 9, 30), datetime(2024, 6, 3, 12, 0)


def _recorded_at(as_of: datetime | None, audience_as_of: datetime | None = LAST_AS_OF) -> dict[str, Recorded]:
    """As _recorded, the model that reads the clock (traits) built at ``as_of``, the model that reads
    it (audience) at ``audience_as_of``."""
    recorded = _recorded()
    for name, at in (("traits", as_of), ("audience", audience_as_of)):
        recorded[name] = Recorded(recorded[name].code, recorded[name].lineage, "v1", at)
    return recorded


def test_with_nothing_new_and_no_event_across_a_window_s_edge_nothing_is_built():
    asked = []

    def crossed(since, until, edges):
        asked.append((since, until, edges))
        return False
    plan = plan_build(MANIFEST, VARS, _recorded_at(LAST_AS_OF), "v1", as_of=NOW, crossed=crossed)
    assert asked == [(LAST_AS_OF, NOW, [0, 7])]  # the edges the model that reads the clock names
    assert plan.builds_nothing and plan.unchanged_since == LAST_AS_OF
    assert plan.left_out == ["audience", "ids", "profiles", "stg", "traits"]
    assert plan.summary() == ["nothing new landed, no code changed, and no event crossed the edge of a window since "
                              "the last build (as_of 2024-06-01 09:30:00): no model to build"]


@pytest.mark.parametrize("case", ["an event crossed an edge", "an earlier as_of", "as_of never recorded",
                                  "a model that reads one not rebuilt", "a model without edges",
                                  "outputs after the build not current"])
def test_time_that_may_have_changed_a_model_builds_what_time_changes(case):
    manifest, recorded, as_of, crossed = MANIFEST, _recorded_at(LAST_AS_OF), NOW, (lambda *_: False)
    current = True
    if case == "outputs after the build not current":  # an export deleted, hashing switched on
        current = False
    elif case == "a model that reads one not rebuilt":  # its last build failed, or dbt skipped it
        recorded = _recorded_at(LAST_AS_OF, audience_as_of=None)
    elif case == "an event crossed an edge":
        crossed = lambda *_: True  # noqa: E731
    elif case == "an earlier as_of":  # a backfill: windows count back from another time
        as_of = LAST_AS_OF - timedelta(days=30)
    elif case == "as_of never recorded":  # before the column, or forgotten by a build killed after writing it
        recorded = _recorded_at(None)
    else:  # a hand-written model that reads the clock: nothing bounds what time changes in it
        manifest = copy.deepcopy(MANIFEST)
        del manifest["nodes"]["model.p.traits"]["config"]["meta"]
    plan = plan_build(manifest, VARS, recorded, "v1", as_of=as_of, crossed=crossed, outputs_current=lambda: current)
    assert plan.unchanged_since is None and plan.time_dependent_only == ["audience", "traits"]


def test_the_same_as_of_again_changes_nothing():
    plan = plan_build(MANIFEST, VARS, _recorded_at(LAST_AS_OF), "v1", as_of=LAST_AS_OF, crossed=lambda *_: True)
    assert plan.builds_nothing  # (an empty band: nothing can have crossed)


def test_an_event_crosses_an_edge_when_time_moves_its_window_over_it(tmp_path):
    """Edge 7 (a 7-day window): between as_of 06-01 09:30 and 06-03 12:00 the window's start moves
    from 05-25 09:30 to 05-27 12:00; edge 0: events become countable at their time."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        crossed = build_state.events_crossed(conn)
        assert crossed(LAST_AS_OF, NOW, [0, 7])  # no profile_events yet: unknown, so yes
        conn.execute("create schema marts; create table marts.profile_events (profile_id varchar, event_at timestamp)")

        def crossed_by(event_at: str, profile_id: str | None = "p1", edges=(0, 7)) -> bool:
            conn.execute("delete from marts.profile_events")
            conn.execute("insert into marts.profile_events values (?, cast(? as timestamp))", [profile_id, event_at])
            return crossed(LAST_AS_OF, NOW, list(edges))
        assert crossed_by("2024-05-26 00:00:00")  # leaves the 7-day window
        assert crossed_by("2024-05-27 12:00:00")  # on the new edge: out (the window is event_at > as_of - 7)
        assert not crossed_by("2024-05-25 09:30:00")  # on the old edge: was out already
        assert not crossed_by("2024-05-28 00:00:00")  # in the window at both times
        assert crossed_by("2024-06-02 00:00:00")  # countable now, not then (edge 0)
        assert not crossed_by("2024-06-04 00:00:00")  # still in the future
        assert not crossed_by("2024-05-26 00:00:00", edges=(0,))  # no 7-day window: nothing to cross
        assert not crossed_by("2024-06-02 00:00:00", profile_id=None)  # in no profile: in no trait


def test_the_as_of_of_a_build_is_the_var_or_the_clock(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        assert build_state.build_as_of(conn, {"as_of": "2024-06-01"}) == datetime(2024, 6, 1)
        assert build_state.build_as_of(conn, {"as_of": "2024-06-01T09:30:00"}) == LAST_AS_OF
        clock = build_state.build_as_of(conn, {"as_of": None})
        assert abs(clock - datetime.now()) < timedelta(minutes=1)  # DuckDB's clock in the machine's zone


def test_the_as_of_is_recorded_for_the_time_dependent_models_and_forgotten_before_they_are_rebuilt(tmp_path):
    plan = plan_build(MANIFEST, VARS, {}, "v1", as_of=LAST_AS_OF, crossed=lambda *_: False)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        build_state.record_builds(conn, plan, list(plan.code), "v1", NOW)
        recorded = build_state.read_recorded(conn)
        assert {name: was.as_of for name, was in recorded.items()} == {
            "stg": None, "ids": None, "profiles": None, "traits": LAST_AS_OF, "audience": LAST_AS_OF}
        again = plan_build(MANIFEST, VARS, recorded, "v1", as_of=NOW, crossed=lambda *_: True)
        build_state.forget_as_of(conn, again)  # the build about to rebuild traits, killed before it records
        assert build_state.read_recorded(conn)["traits"].as_of is None
        assert build_state.last_built_at(conn, ["traits", "audience"]) == NOW
        assert build_state.last_built_at(conn, ["traits", "never_built"]) is None
        assert plan_build(MANIFEST, VARS, build_state.read_recorded(conn), "v1", as_of=NOW,
                          crossed=lambda *_: False).time_dependent_only == ["audience", "traits"]


def test_only_a_run_that_finished_well_is_remembered_as_such(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        assert not build_state.last_run_finished_ok(conn)  # never run
        build_state.mark_last_run(conn, finished_ok=True)
        assert build_state.last_run_finished_ok(conn)
        build_state.mark_last_run(conn, finished_ok=False)  # a run started (and maybe killed)
        assert not build_state.last_run_finished_ok(conn)
        assert conn.execute(f"select count(*) from {build_state.RUN_TABLE}").fetchone() == (1,)


@pytest.mark.parametrize("case", ["new data", "a model never recorded", "a model behind", "requests pending",
                                  "code changed"])
def test_anything_new_builds_every_model(case):
    recorded, version, pending = _recorded(), "v1", True
    if case == "new data":
        version = "v2"
    elif case == "a model never recorded":
        del recorded["profiles"]
    elif case == "a model behind":  # its last build failed: the next does its work again
        recorded["profiles"] = Recorded(recorded["profiles"].code, recorded["profiles"].lineage, "v0")
    elif case == "requests pending":
        pending = False
    else:
        recorded["audience"] = Recorded("old", "old", "v1")
    plan = plan_build(MANIFEST, VARS, recorded, version, nothing_pending=pending)
    assert plan.time_dependent_only is None and plan.left_out == []


def test_the_record_lives_in_the_warehouse_and_keeps_a_failed_model_s_old_entry(tmp_path):
    plan = plan_build(MANIFEST, VARS, {}, "v1")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        assert build_state.read_recorded(conn) == {}
        first = data_version(conn)
        conn.execute("create schema raw; create table raw.loaded_files (load_id varchar, loaded_at timestamp)")
        empty = data_version(conn)
        conn.execute("insert into raw.loaded_files values ('l1', now())")
        assert len({first, empty, data_version(conn)}) == 3
        build_state.record_builds(conn, plan, list(plan.code), "v1", datetime(2024, 1, 1))
        edited = copy.deepcopy(MANIFEST)
        edited["nodes"]["model.p.stg"]["raw_code"] = "select 2 as stg"
        again = plan_build(edited, VARS, build_state.read_recorded(conn), "v1")
        # only stg succeeded: profiles (downstream) is still to be rebuilt from scratch next time
        build_state.record_builds(conn, again, ["model.p.stg"], "v1", datetime(2024, 1, 2))
        assert plan_build(edited, VARS, build_state.read_recorded(conn), "v1").rebuilt_from_scratch == ["profiles"]


def test_run_results_name_the_models_built():
    results = {"results": [{"unique_id": "model.p.a", "status": "success"}, {"unique_id": "model.p.b", "status": "error"},
                           {"unique_id": "test.p.t", "status": "pass"}, {"unique_id": "model.p.c", "status": "skipped"}]}
    assert build_state.succeeded_models(results) == ["model.p.a"]


@pytest.fixture(scope="module")
def manifest():
    return json.loads(dbt_project.manifest_path.read_text())


def test_the_project_s_history_tables_say_so_in_their_config(manifest):
    history = {node["name"] for node in build_state.models(manifest).values() if build_state.keeps_history(node)}
    assert history == {"int_profile_ids", "profile_merges", "audience_membership_history"}


def test_what_time_changes_in_the_project_is_the_computed_traits_and_audiences(manifest):
    plan = plan_build(manifest, VARS, _recorded(manifest), "v1")
    built = set(plan.time_dependent_only)
    assert {"traits__commerce", "traits__engagement", "profile_traits", "audience__cart_abandoners", "audience_members",
            "audience_membership_history"} <= built
    assert not built & {"profile_events", "profile_identifiers", "profiles", "int_identifiers", "stg_segment__tracks"}
    assert all(name.startswith(("traits__", "audience")) or name == "profile_traits" for name in built)
    # every model that reads the clock names where time changes it: a build with nothing new may skip them all
    clock = [node for node in build_state.models(manifest).values() if build_state.reads_the_clock(manifest, node)]
    assert clock and all(build_state.time_edges(node) is not None for node in clock)


def test_a_migration_step_is_new_data(tmp_path):
    """A migration leaves rows for the next build to recompute (an older warehouse's first run after
    an upgrade): that build must not be narrowed to the models that read the clock."""
    from orchestration.core.migrations import upgrade

    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("create schema raw; create table raw.loaded_files (load_id varchar, loaded_at timestamp)")
        before = data_version(conn)
        upgrade(conn)
        assert data_version(conn) != before
