"""What a build must do, from the dbt manifest and what each model was last built from.

- **State follows code.** Each model has a code fingerprint (its SQL, config, the macros it calls,
  the vars they read, its columns' types) and a lineage fingerprint (its code and its parents'
  lineage). A model whose lineage fingerprint differs from the one recorded at its last successful
  build is stale: its code, or the code of something it reads, changed. Stale incremental models
  are rebuilt from scratch (``should_full_refresh``, macros/incremental/rebuild_from_scratch.sql) so that rows
  they kept from the old code go; the models that hold history (``full_refresh: false``) never are.
- **Nothing new, almost nothing runs.** When no model is stale and the data (landed files, privacy
  requests) is the version every model was last built on, only the models that change as time
  passes (those that read ``as_of()``: windows count back from it) and what reads them are built;
  and not even those while time has moved no event across the edge of a window since the ``as_of``
  they were built at (each generated model names its edges: ``TIME_EDGES_META``).

The record is the table ``build_state.model_builds`` in the warehouse (one row per model), so a run
in an ephemeral Dagster instance (``identity-warehouse run``) knows it too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestration.computed.compiler import TIME_EDGES_META
from orchestration.core.warehouse import data_version, fetch_value, table_exists

# dbt reads the names of the models to rebuild from scratch from this variable (an environment
# variable, not a dbt var: a changed var makes dbt parse the whole project again).
REBUILD_ENV = "IDENTITY_WAREHOUSE_REBUILD_FROM_SCRATCH"
# The macro whose value moves with the clock (macros/computed/as_of.sql).
CLOCK_MACRO = "as_of"
# Vars that move time, not code: a later as_of is what the time-dependent models handle themselves.
TIME_VARS = {"as_of"}
_VAR_REFERENCE = re.compile(r"""\bvar\(\s*['"]([A-Za-z0-9_]+)['"]""")

STATE_SCHEMA = "build_state"
STATE_TABLE = f"{STATE_SCHEMA}.model_builds"
STATE_DDL = [
    f"create schema if not exists {STATE_SCHEMA}",
    f"""create table if not exists {STATE_TABLE} (
        model varchar primary key,
        code_fingerprint varchar not null,
        lineage_fingerprint varchar not null,
        data_version varchar not null,
        built_at timestamp not null,
        as_of timestamp  -- models that read the clock: the as_of they were built at (or earlier)
    )""",
]


@dataclass(frozen=True)
class Recorded:
    """What a model was last built from."""

    code: str
    lineage: str
    data_version: str
    as_of: datetime | None = None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def models(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The project's models by unique id."""
    return {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}


def _macro_closure(manifest: Mapping[str, Any], roots: Iterable[str]) -> set[str]:
    macros, seen, todo = manifest["macros"], set(), list(roots)
    while todo:
        uid = todo.pop()
        if uid in seen or uid not in macros:
            continue
        seen.add(uid)
        todo += macros[uid]["depends_on"]["macros"]
    return seen


def _strategy_macros(manifest: Mapping[str, Any], node: Mapping[str, Any]) -> list[str]:
    """The incremental strategy's macro (``get_incremental_<strategy>_sql``): dbt calls it by name,
    so it is in no depends_on."""
    strategy = node["config"].get("incremental_strategy")
    if not strategy:
        return []
    name = f"get_incremental_{strategy.replace('+', '_')}_sql"
    return [uid for uid, macro in manifest["macros"].items() if macro["name"] == name]


def code_fingerprints(manifest: Mapping[str, Any], dbt_vars: Mapping[str, Any]) -> dict[str, str]:
    """Per model: a hash of what its SQL is made from (what dbt compiles it from, short of the data)."""
    macros = manifest["macros"]
    fingerprints = {}
    for uid, node in models(manifest).items():
        closure = _macro_closure(manifest, [*node["depends_on"]["macros"], *_strategy_macros(manifest, node)])
        texts = [node["raw_code"], *(macros[m]["macro_sql"] for m in sorted(closure))]
        read_vars = {name for text in texts for name in _VAR_REFERENCE.findall(text)} - TIME_VARS
        config = {key: value for key, value in node["config"].items() if key not in ("database", "docs", "meta")}
        fingerprints[uid] = _digest({
            "code": texts[0], "language": node.get("language"), "config": config,
            "macros": {m: macros[m]["macro_sql"] for m in sorted(closure)},
            "vars": {name: dbt_vars.get(name) for name in sorted(read_vars)},
            "columns": {name: column.get("data_type") for name, column in sorted(node.get("columns", {}).items())},
        })
    return fingerprints


def model_parents(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    nodes = models(manifest)
    return {uid: sorted(p for p in node["depends_on"]["nodes"] if p in nodes) for uid, node in nodes.items()}


def _topological(parents: Mapping[str, list[str]]) -> list[str]:
    order, done = [], set()

    def visit(uid: str, path: frozenset = frozenset()) -> None:
        if uid in done:
            return
        if uid in path:
            raise ValueError(f"dbt models form a cycle at {uid}")
        for parent in parents[uid]:
            visit(parent, path | {uid})
        done.add(uid)
        order.append(uid)
    for uid in sorted(parents):
        visit(uid)
    return order


def lineage_fingerprints(code: Mapping[str, str], parents: Mapping[str, list[str]]) -> dict[str, str]:
    """Per model: its code fingerprint with its parents' lineage fingerprints: changes when its code
    or the code of anything upstream changes."""
    lineage: dict[str, str] = {}
    for uid in _topological(parents):
        lineage[uid] = _digest([code[uid], [lineage[p] for p in parents[uid]]])
    return lineage


def downstream(parents: Mapping[str, list[str]], roots: Iterable[str]) -> set[str]:
    """``roots`` and every model that reads them, directly or not."""
    children: dict[str, set[str]] = {}
    for uid, ups in parents.items():
        for parent in ups:
            children.setdefault(parent, set()).add(uid)
    seen, todo = set(), list(roots)
    while todo:
        uid = todo.pop()
        if uid not in seen:
            seen.add(uid)
            todo += children.get(uid, ())
    return seen


def keeps_history(node: Mapping[str, Any]) -> bool:
    """A model that holds history (the profile-id registry, merges, audience membership changes)
    says so with ``full_refresh: false``: no rebuild from scratch, by this or by --full-refresh."""
    return node["config"].get("full_refresh") is False


def reads_the_clock(manifest: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    closure = _macro_closure(manifest, node["depends_on"]["macros"])
    return any(manifest["macros"][uid]["name"] == CLOCK_MACRO for uid in closure)


def time_edges(node: Mapping[str, Any]) -> list[int] | None:
    """The days before ``as_of`` where time alone changes the model's rows (its meta), or None: no
    event bounds what time changes."""
    edges = (node["config"].get("meta") or {}).get(TIME_EDGES_META)
    if isinstance(edges, list) and edges and all(isinstance(days, int) and days >= 0 for days in edges):
        return edges
    return None


# Whether an event crossed one of the edges (days before as_of) between two as_of: (since, until, edges).
CrossedEdges = Callable[[datetime, datetime, list[int]], bool]


def events_crossed(conn) -> CrossedEdges:
    """``CrossedEdges`` over ``marts.profile_events``: an event at ``event_at`` crosses the edge ``d``
    days back when ``as_of`` moves from ``since`` to ``until`` and ``since - d < event_at <= until - d``
    (a window ``event_at > as_of - d`` loses it, one ``event_at <= as_of - d`` gains it)."""
    def crossed(since: datetime, until: datetime, edges: list[int]) -> bool:
        if not table_exists(conn, "marts", "profile_events"):
            return True
        bands = [(since - timedelta(days=days), until - timedelta(days=days)) for days in sorted(set(edges))]
        where = " or ".join("(event_at > ? and event_at <= ?)" for _ in bands)
        return bool(fetch_value(conn, "select exists (select 1 from marts.profile_events "
                                      f"where profile_id is not null and ({where}))",
                                [bound for band in bands for bound in band]))
    return crossed


def build_as_of(conn, dbt_vars: Mapping[str, Any]) -> datetime:
    """The ``as_of`` of a build starting now (macros/computed/as_of.sql): the var, or the clock as
    DuckDB reads it, taken before dbt starts (no later than the models' own)."""
    value = dbt_vars.get("as_of")
    if value:
        return fetch_value(conn, "select cast(cast(? as varchar) as timestamp)", [str(value)])
    return fetch_value(conn, "select cast(current_timestamp as timestamp)")


@dataclass
class BuildPlan:
    """What this build does, by model name."""

    code_changed: list[str] = field(default_factory=list)  # own code changed since its last build
    rebuilt_from_scratch: list[str] = field(default_factory=list)  # stale incremental models
    history_kept: list[str] = field(default_factory=list)  # stale, but keep their rows
    # when not None: nothing new landed and no code changed; only these models are built
    time_dependent_only: list[str] | None = None
    left_out: list[str] = field(default_factory=list)  # models not built (time_dependent_only)
    # when not None: besides, time moved no event across a window's edge since the time-dependent
    # models were built at this as_of: no model is built
    unchanged_since: datetime | None = None
    code: dict[str, str] = field(default_factory=dict)  # unique id → code fingerprint
    lineage: dict[str, str] = field(default_factory=dict)  # unique id → lineage fingerprint
    as_of: datetime | None = None  # this build's as_of (recorded for the time-dependent models)
    # unique ids of the models that change as time passes: those that read the clock and what reads them
    time_models: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)  # unique id → model name

    @property
    def builds_nothing(self) -> bool:
        return self.time_dependent_only == []

    def summary(self) -> list[str]:
        """One line per thing the build does differently from an ordinary incremental build."""
        lines = []
        if self.code_changed:
            scratch = set(self.rebuilt_from_scratch)
            own = [name for name in self.code_changed if name in scratch]
            rebuilt = ", ".join(own) if own else "nothing"
            more = len(scratch - set(own))
            lines.append(f"code changed: {', '.join(self.code_changed)}; rebuilt from scratch: {rebuilt}"
                         + (f" and {more} model{'s' if more != 1 else ''} downstream" if more else "")
                         + (f"; history kept: {', '.join(self.history_kept)}" if self.history_kept else ""))
        if self.unchanged_since is not None:
            lines.append(f"nothing new landed, no code changed, and no event crossed the edge of a window since "
                         f"the last build (as_of {self.unchanged_since:%Y-%m-%d %H:%M:%S}): no model to build")
        elif self.time_dependent_only is not None:
            lines.append(f"nothing new landed and no code changed: building only the {len(self.time_dependent_only)} "
                         f"models that change as time passes; {len(self.left_out)} left as they are")
        return lines


def plan_build(manifest: Mapping[str, Any], dbt_vars: Mapping[str, Any], recorded: Mapping[str, Recorded],
               data_version: str, nothing_pending: bool = True, as_of: datetime | None = None,
               crossed: CrossedEdges | None = None, outputs_current: Callable[[], bool] = lambda: True) -> BuildPlan:
    """The plan for one build from the manifest, the effective vars, what each model was last built
    from (by name) and the data's current version. ``nothing_pending`` false (privacy requests wait,
    a full refresh was asked) keeps every model in. With this build's ``as_of`` and ``crossed``, a
    build with nothing new builds nothing while time has changed nothing and ``outputs_current()``
    (what the steps after the build would write, which Dagster then skips, is written already)."""
    nodes = models(manifest)
    parents = model_parents(manifest)
    code = code_fingerprints(manifest, dbt_vars)
    lineage = lineage_fingerprints(code, parents)
    name = {uid: nodes[uid]["name"] for uid in nodes}
    clock = {uid for uid, node in nodes.items() if reads_the_clock(manifest, node)}
    time_models = downstream(parents, clock)
    plan = BuildPlan(code=code, lineage=lineage, as_of=as_of, time_models=time_models, names=name)

    before = {uid: recorded.get(name[uid]) for uid in nodes}
    stale = {uid for uid, was in before.items() if was is not None and was.lineage != lineage[uid]}
    plan.code_changed = sorted(name[uid] for uid in stale if before[uid].code != code[uid])
    incremental = {uid for uid in stale if nodes[uid]["config"].get("materialized") == "incremental"}
    plan.history_kept = sorted(name[uid] for uid in incremental if keeps_history(nodes[uid]))
    plan.rebuilt_from_scratch = sorted(name[uid] for uid in incremental if not keeps_history(nodes[uid]))

    unrecorded_or_behind = {uid for uid, was in before.items() if was is None or was.data_version != data_version}
    if nothing_pending and not stale and not unrecorded_or_behind:
        plan.unchanged_since = _unchanged_by_time(nodes, clock, time_models, before, as_of, crossed, outputs_current)
        built = set() if plan.unchanged_since is not None else time_models
        plan.time_dependent_only = sorted(name[uid] for uid in built)
        plan.left_out = sorted(name[uid] for uid in set(nodes) - built)
    return plan


def plan_from_warehouse(conn, manifest: Mapping[str, Any], dbt_vars: Mapping[str, Any], nothing_pending: bool,
                        outputs_current: Callable[[], bool]) -> tuple[BuildPlan, str]:
    """``plan_build`` with what the warehouse says: each model's last build, the data's version (also
    returned) and, for the models that read the clock, the events time moves across edges."""
    version = data_version(conn)
    plan = plan_build(manifest, dbt_vars, read_recorded(conn), version, nothing_pending,
                      build_as_of(conn, dbt_vars), events_crossed(conn), outputs_current)
    return plan, version


def _unchanged_by_time(nodes: Mapping[str, Mapping[str, Any]], clock: set[str], time_models: set[str],
                       before: Mapping[str, Recorded | None], as_of: datetime | None, crossed: CrossedEdges | None,
                       outputs_current: Callable[[], bool]) -> datetime | None:
    """The earliest ``as_of`` the time-dependent models were last built at, when moving to ``as_of``
    changes none of them: every one recorded its as_of (a failed or skipped one has none), every one
    that reads the clock names its edges, ``as_of`` is not earlier than any (a backfill recomputes),
    no event crossed an edge in between, and ``outputs_current()``."""
    if as_of is None or crossed is None:
        return None
    edges_of = {uid: time_edges(nodes[uid]) for uid in clock}
    if None in edges_of.values() or any(before[uid].as_of is None for uid in time_models):
        return None
    edges = sorted({days for model_edges in edges_of.values() for days in model_edges})
    built_at = [before[uid].as_of for uid in time_models]
    since = min(built_at, default=as_of)
    if as_of < max(built_at, default=as_of) or (since < as_of and edges and crossed(since, as_of, edges)):
        return None
    return since if outputs_current() else None


# Asset checks that read what the builds since their last pass wrote, not the whole warehouse
# (orchestration/location/checks.py): the time each last passed. A --full-refresh build forgets them.
CHECKS_TABLE = f"{STATE_SCHEMA}.checks_passed"
CHECKS_DDL = [
    f"create schema if not exists {STATE_SCHEMA}",
    f"create table if not exists {CHECKS_TABLE} (check_name varchar primary key, passed_at timestamp not null)",
]


def check_passed_at(conn, check_name: str) -> datetime | None:
    """When ``check_name`` last passed (it started then), or None: it reads everything."""
    if not table_exists(conn, STATE_SCHEMA, "checks_passed"):
        return None
    row = conn.execute(f"select passed_at from {CHECKS_TABLE} where check_name = ?", [check_name]).fetchone()
    return row[0] if row else None


def record_check_passed(conn, check_name: str, started_at: datetime) -> None:
    for statement in CHECKS_DDL:
        conn.execute(statement)
    conn.execute(f"insert or replace into {CHECKS_TABLE} values (?, ?)", [check_name, started_at])


def forget_checks_passed(conn) -> None:
    """After a --full-refresh build: the next checks read the whole warehouse, as its tests do."""
    if table_exists(conn, STATE_SCHEMA, "checks_passed"):
        conn.execute(f"delete from {CHECKS_TABLE}")


# Whether the last run of the main job finished with every step and check passing: a run marks
# itself unfinished when its build starts (the dbt asset), and ``identity-warehouse run`` marks how
# its run ended. Only then may the next ``identity-warehouse run`` conclude it has nothing to do
# (orchestration/location/up_to_date.py): a run from the UI, the schedule or the sensor, or a killed
# one, leaves it unfinished. A run that lands files and stops before its build needs no mark: the
# files it landed are newer than every model's record.
RUN_TABLE = f"{STATE_SCHEMA}.last_run"
RUN_DDL = [
    f"create schema if not exists {STATE_SCHEMA}",
    f"create table if not exists {RUN_TABLE} (finished_ok boolean not null, marked_at timestamp not null)",
]


def mark_last_run(conn, finished_ok: bool) -> None:
    for statement in RUN_DDL:
        conn.execute(statement)
    conn.execute(f"delete from {RUN_TABLE}")
    conn.execute(f"insert into {RUN_TABLE} values (?, now() at time zone 'UTC')", [finished_ok])


def last_run_finished_ok(conn) -> bool:
    if not table_exists(conn, STATE_SCHEMA, "last_run"):
        return False
    return bool(fetch_value(conn, f"select bool_and(finished_ok) from {RUN_TABLE}"))


def last_built_at(conn, model_names: Iterable[str]) -> datetime | None:
    """When the latest of these models was last built (UTC), or None when one never was."""
    names = sorted(set(model_names))
    if not table_exists(conn, STATE_SCHEMA, "model_builds"):
        return None
    found, latest = conn.execute(f"select count(*), max(built_at) from {STATE_TABLE} where list_contains(?, model)",
                                 [names]).fetchone()
    return latest if found == len(names) else None


def read_recorded(conn) -> dict[str, Recorded]:
    """``build_state.model_builds`` (empty before the first build that records it)."""
    if not table_exists(conn, STATE_SCHEMA, "model_builds"):
        return {}
    rows = conn.execute(f"select model, code_fingerprint, lineage_fingerprint, data_version, as_of "
                        f"from {STATE_TABLE}").fetchall()
    return {model: Recorded(code, lineage, version, as_of) for model, code, lineage, version, as_of in rows}


def forget_as_of(conn, plan: BuildPlan) -> None:
    """Before dbt starts: the time-dependent models the build may rebuild lose their recorded as_of
    until it records them again. One that fails, or that dbt skips (a test of what it reads failed),
    or a build killed after writing some of them at its as_of, leaves them unknown: the next build
    rebuilds them instead of trusting the old as_of."""
    left_out = set(plan.left_out)
    building = sorted(plan.names[uid] for uid in plan.time_models if plan.names[uid] not in left_out)
    if building and table_exists(conn, STATE_SCHEMA, "model_builds"):
        conn.execute(f"update {STATE_TABLE} set as_of = null where list_contains(?, model)", [building])


def record_builds(conn, plan: BuildPlan, succeeded: Iterable[str], version: str, built_at: datetime) -> int:
    """Records what each model that dbt built successfully (unique ids) was built from."""
    rows = [(plan.names[uid], plan.code[uid], plan.lineage[uid], version, built_at,
             plan.as_of if uid in plan.time_models else None)
            for uid in succeeded if uid in plan.code]
    for statement in STATE_DDL:
        conn.execute(statement)
    if rows:
        conn.executemany(f"insert or replace into {STATE_TABLE} "
                         "(model, code_fingerprint, lineage_fingerprint, data_version, built_at, as_of) "
                         "values (?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def succeeded_models(run_results: Mapping[str, Any]) -> list[str]:
    """The models a dbt run_results.json says were built."""
    return [result["unique_id"] for result in run_results.get("results", [])
            if result["unique_id"].startswith("model.") and result["status"] == "success"]
