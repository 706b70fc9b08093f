"""What a build must do (orchestration/location/build_state.py): state follows code, and a build
with nothing new builds only what time changes."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import duckdb
import pytest

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
        "model.p.traits": _model("traits", ["profiles"], ["window"]),
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
    names = {uid: uid.split(".")[-1] for uid in plan.code}
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        assert build_state.read_recorded(conn) == {}
        first = data_version(conn)
        conn.execute("create schema raw; create table raw.loaded_files (load_id varchar, loaded_at timestamp)")
        empty = data_version(conn)
        conn.execute("insert into raw.loaded_files values ('l1', now())")
        assert len({first, empty, data_version(conn)}) == 3
        build_state.record_builds(conn, plan, names, list(plan.code), "v1", datetime(2024, 1, 1))
        edited = copy.deepcopy(MANIFEST)
        edited["nodes"]["model.p.stg"]["raw_code"] = "select 2 as stg"
        again = plan_build(edited, VARS, build_state.read_recorded(conn), "v1")
        # only stg succeeded: profiles (downstream) is still to be rebuilt from scratch next time
        build_state.record_builds(conn, again, names, ["model.p.stg"], "v1", datetime(2024, 1, 2))
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


def test_a_migration_step_is_new_data(tmp_path):
    """A migration leaves rows for the next build to recompute (an older warehouse's first run after
    an upgrade): that build must not be narrowed to the models that read the clock."""
    from orchestration.core.migrations import upgrade

    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("create schema raw; create table raw.loaded_files (load_id varchar, loaded_at timestamp)")
        before = data_version(conn)
        upgrade(conn)
        assert data_version(conn) != before
