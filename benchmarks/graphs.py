"""The identity-graph step against its alternatives, on the same integer edge lists.

For each graph family the deduplicated edge list is written into a bench DuckDB file and solved by:

- the project: the same `connected_components` macro the identity graph model uses, through
  `dbt run-operation bench_connected_components` (its own elapsed time, and the wall time with dbt's
  start-up);
- scipy: `scipy.sparse.csgraph.connected_components` on the edges in memory (the practical lower
  bound; loading them from DuckDB is not counted);
- Splink: `splink.clustering.cluster_pairwise_predictions_at_threshold` on DuckDB, on the same file
  (the open-source peer);
- a recursive-CTE transitive closure in DuckDB (the naive SQL way), interrupted after a timeout.

All partitions are compared through canonical labels (the smallest node id of each component).

    python -m benchmarks.graphs --families all --out DIR [--warehouse built.duckdb]

prints a markdown table and writes DIR/graphs.md and DIR/graphs.json. The families are the ones that
break weak algorithms: a chain in sorted id order (min-label propagation needs one round per node), the
same chain with random ids, a hub (a placeholder e-mail shared by 100,000 people), one giant component,
and, with --warehouse, the identity graph of a built warehouse.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from orchestration.core import settings, warehouse

BENCH_SCHEMA = "bench"
# DuckDB names the database after the file's stem: it must not be the schema's name.
BENCH_FILE_NAME = "graphs.duckdb"
SOLVERS = ["project", "scipy", "splink", "cte"]
FAMILIES = ["chain_sorted", "chain_random", "hub", "giant", "identity"]
# Targets of issue 5 for the identity graph step.
MAX_RATIO_TO_SCIPY = 5.0
MAX_ROUNDS_SORTED_CHAIN = 10


@dataclass
class Graph:
    """An undirected graph on integer node ids; `edges` is an (m, 2) array."""

    family: str
    nodes: np.ndarray
    edges: np.ndarray


# ---------------------------------------------------------------------------------------------- families


def deduplicate_edges(edges: np.ndarray) -> np.ndarray:
    """Each undirected edge once, as (smaller, larger), without self-loops; sorted."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    pairs = np.sort(edges, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


def _graph(family: str, nodes: np.ndarray, edges: np.ndarray) -> Graph:
    return Graph(family, np.sort(np.asarray(nodes, dtype=np.int64)), deduplicate_edges(edges))


def chain_sorted(nodes: int = 10_000) -> Graph:
    """1 - 2 - 3 - ... - n: the smallest id is at one end, so a minimum label travels one hop a round."""
    ids = np.arange(1, nodes + 1, dtype=np.int64)
    return _graph("chain_sorted", ids, np.column_stack([ids[:-1], ids[1:]]))


def chain_random(nodes: int = 10_000, seed: int = 0) -> Graph:
    """The same chain with its ids shuffled (a person with one cookie reset after another)."""
    ids = np.random.default_rng(seed).permutation(nodes).astype(np.int64) + 1
    return _graph("chain_random", ids, np.column_stack([ids[:-1], ids[1:]]))


def hub(leaves: int = 100_000, seed: int = 0) -> Graph:
    """One node linked to `leaves` others (a placeholder e-mail), at a random place among the ids."""
    ids = np.random.default_rng(seed).permutation(leaves + 1).astype(np.int64) + 1
    centre, others = ids[0], ids[1:]
    return _graph("hub", ids, np.column_stack([np.full(leaves, centre), others]))


def giant(nodes: int = 1_000_000, extra_edge_ratio: float = 0.5, seed: int = 0) -> Graph:
    """One component: a random recursive tree (each node links to a random earlier one) plus
    `extra_edge_ratio * nodes` random edges, with shuffled ids."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(nodes).astype(np.int64) + 1
    children = np.arange(1, nodes)
    parents = (rng.random(nodes - 1) * children).astype(np.int64)  # uniform in [0, child)
    extra = rng.integers(0, nodes, size=(int(nodes * extra_edge_ratio), 2))
    positions = np.vstack([np.column_stack([children, parents]), extra])
    return _graph("giant", ids, ids[positions])


def warehouse_graph(warehouse_path: Path) -> Graph:
    """The deduplicated integer edge list the identity graph step works on, from a built warehouse
    (as `int_identity_components` numbers `int_identity_nodes` and joins `int_identity_edges` to them)."""
    with warehouse.connect(Path(warehouse_path), read_only=True) as conn:
        conn.execute("""
            create temp table numbered_nodes as
            select row_number() over (order by first_seen_at, priority, identifier_type, identifier_value) as node_id,
                   identifier_type, identifier_value
            from intermediate.int_identity_nodes
        """)
        nodes = conn.execute("select node_id from numbered_nodes").fetchnumpy()["node_id"]
        edges = conn.execute("""
            select distinct least(source_node.node_id, target_node.node_id) as src,
                            greatest(source_node.node_id, target_node.node_id) as dst
            from intermediate.int_identity_edges as edges
            join numbered_nodes as source_node
                on source_node.identifier_type = edges.from_type and source_node.identifier_value = edges.from_value
            join numbered_nodes as target_node
                on target_node.identifier_type = edges.to_type and target_node.identifier_value = edges.to_value
            where source_node.node_id <> target_node.node_id
        """).fetchnumpy()
    return _graph("identity", nodes, np.column_stack([edges["src"], edges["dst"]]))


# ---------------------------------------------------------------------------------------------- partitions


def canonical_labels(node_ids: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node ids sorted, the smallest node id of each one's component): equal for equal partitions,
    whatever labels a solver gives its components."""
    node_ids = np.asarray(node_ids, dtype=np.int64)
    order = np.argsort(node_ids, kind="stable")
    node_ids, labels = node_ids[order], np.asarray(labels)[order]
    _, component = np.unique(labels, return_inverse=True)
    smallest = np.full(component.max() + 1 if len(component) else 0, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, component, node_ids)
    return node_ids, smallest[component]


def same_partition(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether two (node_ids, labels) assignments split the same nodes into the same components."""
    nodes_a, canonical_a = canonical_labels(*a)
    nodes_b, canonical_b = canonical_labels(*b)
    return np.array_equal(nodes_a, nodes_b) and np.array_equal(canonical_a, canonical_b)


def component_count(labels: np.ndarray) -> int:
    return len(np.unique(labels))


# ---------------------------------------------------------------------------------------------- solvers


@dataclass
class SolverRun:
    status: str  # "ok", "timeout", "out of memory" or "error: ..."
    seconds: float | None  # None unless ok
    assignment: tuple[np.ndarray, np.ndarray] | None = None  # (node_ids, labels)
    details: dict = field(default_factory=dict)


def write_graph(bench_file: Path, graph: Graph) -> None:
    """The graph as tables bench.nodes (node_id) and bench.edges (src, dst), replacing the previous."""
    import pandas as pd

    nodes = pd.DataFrame({"node_id": graph.nodes})
    edges = pd.DataFrame({"src": graph.edges[:, 0], "dst": graph.edges[:, 1]})
    with _bench_connection(bench_file) as conn:
        conn.execute(f"drop schema if exists {BENCH_SCHEMA} cascade; create schema {BENCH_SCHEMA}")
        conn.register("nodes_frame", nodes)
        conn.register("edges_frame", edges)
        conn.execute(f"create table {BENCH_SCHEMA}.nodes as select node_id::bigint as node_id from nodes_frame")
        conn.execute(f"create table {BENCH_SCHEMA}.edges as select src::bigint as src, dst::bigint as dst from edges_frame")
    # Start every solver from the same on-disk state.
    with _bench_connection(bench_file) as conn:
        conn.execute("checkpoint")


class _bench_connection:
    """A connection to the bench file with the warehouse's memory settings, spilling beside it."""

    def __init__(self, bench_file: Path, memory_limit: str | None = None):
        config = {"memory_limit": memory_limit or settings.duckdb_config()["memory_limit"],
                  "temp_directory": f"{bench_file}.tmp"}
        self.conn = duckdb.connect(str(bench_file), config=config)
        self.conn.execute("set enable_progress_bar = false")

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self.conn

    def __exit__(self, *exc) -> None:
        self.conn.close()


def _assignment(bench_file: Path, sql: str) -> tuple[np.ndarray, np.ndarray]:
    with _bench_connection(bench_file) as conn:
        columns = conn.execute(sql).fetchnumpy()
    node_ids, labels = columns.values()
    return np.asarray(node_ids, dtype=np.int64), np.asarray(labels)


def prepare_dbt_project() -> None:
    """The trait and audience YAML become models before dbt can parse the project (as the job does)."""
    from orchestration.computed.compiler import compile_definitions

    compile_definitions(settings.DBT_PROJECT_DIR)


def solve_project(bench_file: Path, log_dir: Path) -> SolverRun:
    """The project's macro via dbt, in its own process (as the pipeline runs it)."""
    command = [settings.DBT_EXECUTABLE, "run-operation", "bench_connected_components", "--args",
               json.dumps({"nodes": f"{BENCH_SCHEMA}.nodes", "edges": f"{BENCH_SCHEMA}.edges",
                           "result": f"{BENCH_SCHEMA}.cc_project"}),
               "--project-dir", str(settings.DBT_PROJECT_DIR), "--profiles-dir", str(settings.DBT_PROFILES_DIR),
               # its own target and log folders: partial parsing stays valid across bench runs
               "--target-path", str(log_dir / "target"), "--log-path", str(log_dir / "logs")]
    env = {**os.environ, "DUCKDB_PATH": str(bench_file), "DUCKDB_TEMP_DIR": f"{bench_file}.tmp",
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    stats = parse_operation_stats(completed.stdout)
    if completed.returncode != 0 or stats is None:
        tail = (completed.stdout + completed.stderr).strip().splitlines()[-5:]
        return SolverRun(f"error: {' | '.join(tail)}", None)
    stats["wall_seconds"] = wall
    assignment = _assignment(bench_file, f"select node_id, component_id from {BENCH_SCHEMA}.cc_project")
    return SolverRun("ok", stats["seconds"], assignment, stats)


def parse_operation_stats(stdout: str) -> dict | None:
    """The JSON that bench_connected_components prints on its line."""
    marker = "bench_connected_components "
    for line in stdout.splitlines():
        if line.startswith(marker):
            return json.loads(line[len(marker):])
    return None


def solve_scipy(graph: Graph) -> SolverRun:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    started = time.perf_counter()
    positions = np.searchsorted(graph.nodes, graph.edges)  # node ids -> 0..n-1
    size = len(graph.nodes)
    matrix = coo_matrix((np.ones(len(positions), dtype=np.int8), (positions[:, 0], positions[:, 1])),
                        shape=(size, size)).tocsr()
    count, labels = connected_components(matrix, directed=False)
    seconds = time.perf_counter() - started
    return SolverRun("ok", seconds, (graph.nodes, labels), {"components": int(count)})


def _with_timeout(conn: duckdb.DuckDBPyConnection, timeout: float, work: Callable[[], object]) -> tuple[str, float, object]:
    """Run `work` (queries on `conn`); past `timeout` seconds interrupt it. (status, elapsed seconds, result).

    A client may run many queries in a row (Splink does), so the interrupt is repeated until `work`
    returns: one falling between two queries would be lost."""
    finished = threading.Event()
    timed_out = threading.Event()

    def interrupter() -> None:
        if finished.wait(timeout):
            return
        timed_out.set()
        while not finished.wait(0.05):
            conn.interrupt()

    thread = threading.Thread(target=interrupter, daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        result = work()
        status = "ok"
    except duckdb.OutOfMemoryException:
        result, status = None, "out of memory"
    except Exception as error:  # noqa: BLE001 - Splink wraps DuckDB's interrupt in its own errors
        result = None
        status = "timeout" if timed_out.is_set() else f"error: {type(error).__name__}: {str(error)[:200]}"
    seconds = time.perf_counter() - started
    finished.set()
    thread.join()
    return status, seconds, result


def solve_splink(bench_file: Path, timeout: float) -> SolverRun:
    from splink import DuckDBAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    logging.getLogger("splink").setLevel(logging.WARNING)
    with _bench_connection(bench_file) as conn:
        db_api = DuckDBAPI(connection=conn)

        def cluster():
            clusters = cluster_pairwise_predictions_at_threshold(
                f"{BENCH_SCHEMA}.nodes", f"{BENCH_SCHEMA}.edges", db_api=db_api, node_id_column_name="node_id",
                edge_id_column_name_left="src", edge_id_column_name_right="dst")
            return clusters.physical_name

        status, elapsed, table = _with_timeout(conn, timeout, cluster)
        assignment = None
        if status == "ok":
            columns = conn.execute(f"select node_id, cluster_id from {table}").fetchnumpy()
            assignment = (np.asarray(columns["node_id"], dtype=np.int64), np.asarray(columns["cluster_id"]))
        for (name,) in conn.execute("select table_name from information_schema.tables "
                                    "where table_name like '__splink__%'").fetchall():
            conn.execute(f'drop table if exists "{name}"')
    return _finished_or_stopped(status, elapsed, assignment)


RECURSIVE_CTE_SQL = f"""
create or replace table {BENCH_SCHEMA}.cc_cte as
with recursive both_ways as (
    select src, dst from {BENCH_SCHEMA}.edges
    union all
    select dst as src, src as dst from {BENCH_SCHEMA}.edges
),
reachable (node_id, reached) as (
    select node_id, node_id from {BENCH_SCHEMA}.nodes
    union
    select reachable.node_id, both_ways.dst
    from reachable join both_ways on both_ways.src = reachable.reached
)
select node_id, min(reached) as component_id from reachable group by node_id
"""


def solve_recursive_cte(bench_file: Path, timeout: float, memory_limit: str) -> SolverRun:
    """Every node's transitive closure, then its smallest member: what one writes without a loop."""
    with _bench_connection(bench_file, memory_limit=memory_limit) as conn:
        status, elapsed, _ = _with_timeout(conn, timeout, lambda: conn.execute(RECURSIVE_CTE_SQL).fetchall())
    assignment = None
    if status == "ok":
        assignment = _assignment(bench_file, f"select node_id, component_id from {BENCH_SCHEMA}.cc_cte")
    return _finished_or_stopped(status, elapsed, assignment)


def _finished_or_stopped(status: str, elapsed: float, assignment) -> SolverRun:
    if status == "ok":
        return SolverRun(status, elapsed, assignment)
    return SolverRun(status, None, None, {"stopped_after": elapsed})


# ---------------------------------------------------------------------------------------------- results


@dataclass
class FamilyResult:
    family: str
    nodes: int
    edges: int
    components: int
    seconds: dict[str, float | None]  # solver -> median seconds, None when it did not finish
    run_seconds: dict[str, list[float]]  # solver -> the seconds of each run that finished
    status: dict[str, str]
    timeout_seconds: float
    stopped_after: dict[str, float]  # solver -> seconds until its timeout or out-of-memory error
    project_wall_seconds: float | None
    project_rounds: int | None
    project_jumps: int | None
    project_round_seconds: list[float]
    partitions_equal: bool  # every solver that finished agrees with scipy
    disagreeing: list[str] = field(default_factory=list)

    def ratio(self, solver: str) -> float | None:
        """The solver's time over the project's (project over scipy for scipy)."""
        project, other = self.seconds.get("project"), self.seconds.get(solver)
        if solver == "scipy":
            return project / other if project and other else None
        if project and solver in self.stopped_after:
            return self.stopped_after[solver] / project  # a lower bound: it did not finish
        return other / project if project and other else None

    def targets(self) -> dict[str, bool | None]:
        """Issue 5's targets, None where they cannot be judged (a solver failed)."""
        to_scipy, splink = self.ratio("scipy"), self.ratio("splink")
        met = {"within 5x of scipy": None if to_scipy is None else to_scipy <= MAX_RATIO_TO_SCIPY,
               "faster than Splink": None if splink is None else splink > 1.0,
               "faster than the recursive CTE": None if self.ratio("cte") is None else self.ratio("cte") > 1.0}
        if self.family == "chain_sorted":
            met["<= 10 rounds"] = None if self.project_rounds is None else self.project_rounds <= MAX_ROUNDS_SORTED_CHAIN
        return met


def median_run(attempts: list[SolverRun]) -> SolverRun:
    """The run of median time (the lower middle one of an even count); the last, if one failed."""
    if attempts[-1].status != "ok":
        return attempts[-1]
    return sorted(attempts, key=lambda attempt: attempt.seconds)[(len(attempts) - 1) // 2]


def compare(graph: Graph, workdir: Path, timeout: float = 120.0, cte_memory_limit: str = "4GB",
            solvers: list[str] | None = None, repeats: int = 3) -> FamilyResult:
    """Write the graph into a fresh bench file under `workdir` and run every solver on it, `repeats`
    times (the recursive CTE once): the median time is reported."""
    solvers = solvers or SOLVERS
    workdir.mkdir(parents=True, exist_ok=True)
    bench_file = workdir / BENCH_FILE_NAME
    for stale in (bench_file, Path(f"{bench_file}.wal")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(f"{bench_file}.tmp", ignore_errors=True)
    write_graph(bench_file, graph)

    def solve(solver: str) -> SolverRun:
        if solver == "project":
            return solve_project(bench_file, workdir)
        if solver == "scipy":
            return solve_scipy(graph)
        if solver == "splink":
            return solve_splink(bench_file, timeout)
        return solve_recursive_cte(bench_file, timeout, cte_memory_limit)

    runs: dict[str, SolverRun] = {}
    run_seconds: dict[str, list[float]] = {}
    for solver in solvers:
        attempts: list[SolverRun] = []
        # The recursive CTE runs once: it is cut off by the timeout or its memory limit anyway.
        while len(attempts) < (1 if solver == "cte" else repeats) and (not attempts or attempts[-1].status == "ok"):
            print(f"  {graph.family}: {solver} ...", file=sys.stderr, flush=True)
            attempts.append(solve(solver))
            print(f"  {graph.family}: {solver} {attempts[-1].status} {attempts[-1].seconds}", file=sys.stderr, flush=True)
        runs[solver] = median_run(attempts)
        run_seconds[solver] = [attempt.seconds for attempt in attempts if attempt.seconds is not None]

    reference_name = "scipy" if "scipy" in runs else next(iter(runs))
    reference = runs[reference_name].assignment
    disagreeing = [name for name, run in runs.items()
                   if run.assignment is not None and reference is not None and not same_partition(reference, run.assignment)]
    project = runs.get("project", SolverRun("not run", None))
    return FamilyResult(
        family=graph.family, nodes=len(graph.nodes), edges=len(graph.edges),
        components=component_count(reference[1]) if reference is not None else -1,
        seconds={name: run.seconds for name, run in runs.items()},
        run_seconds=run_seconds,
        status={name: run.status for name, run in runs.items()},
        timeout_seconds=timeout,
        stopped_after={name: run.details["stopped_after"] for name, run in runs.items() if "stopped_after" in run.details},
        project_wall_seconds=project.details.get("wall_seconds"),
        project_rounds=project.details.get("rounds"), project_jumps=project.details.get("jumps"),
        project_round_seconds=project.details.get("round_seconds", []),
        partitions_equal=not disagreeing and reference is not None, disagreeing=disagreeing,
    )


def compare_on_warehouse(warehouse_path: Path, workdir: Path, timeout: float = 120.0, repeats: int = 3) -> FamilyResult:
    """For the pipeline benchmark: the solvers on the edge list of the warehouse it just built."""
    prepare_dbt_project()
    return compare(warehouse_graph(warehouse_path), workdir, timeout, repeats=repeats)


def _seconds(result: FamilyResult, solver: str) -> str:
    status = result.status.get(solver)
    if status is None:
        return "-"
    if status == "ok":
        return f"{result.seconds[solver]:.2f}"
    if status == "timeout":
        return f"> {result.stopped_after.get(solver, result.timeout_seconds):.0f} (timeout)"
    if solver in result.stopped_after:
        return f"> {result.stopped_after[solver]:.0f} ({status})"
    return status.split(":")[0]


def _ratio(result: FamilyResult, solver: str) -> str:
    value = result.ratio(solver)
    if value is None:
        return "-"
    bound = "> " if solver in result.stopped_after else ""
    return f"{bound}{value:.1f}x"


def markdown_table(results: list[FamilyResult]) -> str:
    header = ("| family | nodes | edges | components | project s (macro) | project s (with dbt start-up) | rounds "
              "| pointer jumps | scipy s | Splink s | recursive CTE s | project / scipy | Splink / project "
              "| CTE / project | same partition | targets missed |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        missed = [name for name, met in r.targets().items() if met is False]
        unjudged = [name for name, met in r.targets().items() if met is None]
        verdict = ", ".join(missed) or "none"
        if unjudged:
            verdict += f" (not judged: {', '.join(unjudged)})"
        wall = f"{r.project_wall_seconds:.1f}" if r.project_wall_seconds is not None else "-"
        lines.append(
            f"| {r.family} | {r.nodes:,} | {r.edges:,} | {r.components:,} | {_seconds(r, 'project')} | {wall} "
            f"| {r.project_rounds if r.project_rounds is not None else '-'} "
            f"| {r.project_jumps if r.project_jumps is not None else '-'} "
            f"| {_seconds(r, 'scipy')} | {_seconds(r, 'splink')} | {_seconds(r, 'cte')} "
            f"| {_ratio(r, 'scipy')} | {_ratio(r, 'splink')} | {_ratio(r, 'cte')} "
            f"| {'yes' if r.partitions_equal else 'NO: ' + ', '.join(r.disagreeing)} | {verdict} |")
    return "\n".join(lines)


def build_families(names: list[str], args: argparse.Namespace) -> list[Graph]:
    makers: dict[str, Callable[[], Graph]] = {
        "chain_sorted": lambda: chain_sorted(args.chain_nodes),
        "chain_random": lambda: chain_random(args.chain_nodes, args.seed),
        "hub": lambda: hub(args.hub_edges, args.seed),
        "giant": lambda: giant(args.giant_nodes, seed=args.seed),
        "identity": lambda: warehouse_graph(args.warehouse),
    }
    return [makers[name]() for name in names]


def family_names(families: str, warehouse_given: bool) -> list[str]:
    """`all` (the identity family only with a warehouse) or a comma-separated list."""
    if families == "all":
        return [name for name in FAMILIES if name != "identity" or warehouse_given]
    names = [name.strip() for name in families.split(",") if name.strip()]
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"unknown families: {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
    if "identity" in names and not warehouse_given:
        raise SystemExit("the identity family needs --warehouse (a built warehouse file)")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.graphs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="all", help=f"all, or some of: {', '.join(FAMILIES)}")
    parser.add_argument("--out", type=Path, required=True, help="folder for graphs.md, graphs.json and the bench file")
    parser.add_argument("--warehouse", type=Path, help="a built warehouse: its identity graph is one more family")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help=f"some of: {', '.join(SOLVERS)}")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before Splink or the CTE is interrupted")
    parser.add_argument("--cte-memory-limit", default="4GB", help="DuckDB memory limit of the recursive CTE")
    parser.add_argument("--chain-nodes", type=int, default=10_000)
    parser.add_argument("--hub-edges", type=int, default=100_000)
    parser.add_argument("--giant-nodes", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each solver but the CTE (the median is reported)")
    parser.add_argument("--keep", action="store_true", help="keep the bench DuckDB file of the last family")
    args = parser.parse_args(argv)
    settings.quiet_telemetry()

    names = family_names(args.families, args.warehouse is not None)
    solvers = [name.strip() for name in args.solvers.split(",") if name.strip()]
    args.out = args.out.resolve()  # dbt runs in the dbt project's folder: a relative path would land there
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.out / "graphs_work"
    if "project" in solvers:
        prepare_dbt_project()
    results = []
    for name in names:
        graph = build_families([name], args)[0]
        results.append(compare(graph, workdir, args.timeout, args.cte_memory_limit, solvers, args.repeats))
        del graph
    table = markdown_table(results)
    print(table)
    (args.out / "graphs.md").write_text(
        "# Identity graph step against its alternatives\n\n" + table + "\n\n"
        f"Times are medians of {args.repeats} runs (the recursive CTE runs once). Splink and the recursive CTE are interrupted after {args.timeout:.0f} s; the CTE runs under a "
        f"{args.cte_memory_limit} memory limit (`> N (out of memory)`: it failed after N s). scipy's time is its "
        "computation on the edges in memory (loading them is not counted). Ratios: project / scipy, and "
        "Splink or CTE / project (a lower bound when it did not finish).\n")
    (args.out / "graphs.json").write_text(json.dumps(
        [{**asdict(r), "ratios": {s: r.ratio(s) for s in ("scipy", "splink", "cte")}, "targets": r.targets()}
         for r in results], indent=2))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r.partitions_equal for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
