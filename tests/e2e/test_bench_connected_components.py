"""`dbt run-operation bench_connected_components`: the project's connected components macro on an
arbitrary integer graph, as the graph benchmark runs it."""

from __future__ import annotations

import duckdb
import numpy as np

from benchmarks import graphs
from tests.unit.test_bench_graphs import components_by_union_find


def several_families() -> graphs.Graph:
    """A sorted chain, a shuffled chain, a hub and isolated nodes, on disjoint ids."""
    parts = [graphs.chain_sorted(1_000), graphs.chain_random(300, seed=1), graphs.hub(200, seed=2)]
    offsets = [0, 10_000, 20_000]
    isolated = np.arange(30_000, 30_005)
    nodes = np.concatenate([part.nodes + offset for part, offset in zip(parts, offsets)] + [isolated])
    edges = np.vstack([part.edges + offset for part, offset in zip(parts, offsets)])
    return graphs.Graph("several", np.sort(nodes), graphs.deduplicate_edges(edges))


def test_operation_finds_the_components_in_few_rounds_and_leaves_no_work_tables(tmp_path):
    graph = several_families()
    bench_file = tmp_path / graphs.BENCH_FILE_NAME
    graphs.write_graph(bench_file, graph)

    run = graphs.solve_project(bench_file, tmp_path)

    assert run.status == "ok", run.status
    expected = components_by_union_find(graph)
    assert graphs.same_partition(run.assignment, (np.array(list(expected)), np.array(list(expected.values()))))
    assert graphs.component_count(run.assignment[1]) == 3 + 5
    assert 1 <= run.details["rounds"] <= graphs.MAX_ROUNDS_SORTED_CHAIN
    assert len(run.details["round_seconds"]) == run.details["rounds"]
    assert 0 < run.details["seconds"] < run.details["wall_seconds"]
    with duckdb.connect(str(bench_file), read_only=True) as conn:
        tables = {name for (name,) in conn.execute("select table_name from information_schema.tables").fetchall()}
    assert tables == {"nodes", "edges", "cc_project"}
