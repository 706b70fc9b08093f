"""The graph benchmark's families, partition check and report (no benchmark is run here)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import graphs


def components_by_union_find(graph: graphs.Graph) -> dict[int, int]:
    """node -> smallest node of its component, independently of the code under test."""
    parent = {int(node): int(node) for node in graph.nodes}

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for src, dst in graph.edges.tolist():
        a, b = root(src), root(dst)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {node: root(node) for node in parent}


def assert_canonical_edge_list(graph: graphs.Graph) -> None:
    assert graph.edges.dtype == np.int64 and graph.edges.shape[1] == 2
    assert (graph.edges[:, 0] < graph.edges[:, 1]).all(), "each edge once, smaller id first, no self-loop"
    assert len(np.unique(graph.edges, axis=0)) == len(graph.edges)
    assert np.isin(graph.edges, graph.nodes).all()
    assert len(np.unique(graph.nodes)) == len(graph.nodes)


def test_deduplicate_edges_keeps_each_undirected_edge_once():
    edges = np.array([[2, 1], [1, 2], [3, 3], [4, 5], [5, 4], [4, 5]])
    assert graphs.deduplicate_edges(edges).tolist() == [[1, 2], [4, 5]]


def test_sorted_chain_is_one_path_in_id_order():
    graph = graphs.chain_sorted(100)
    assert_canonical_edge_list(graph)
    assert graph.edges.tolist() == [[i, i + 1] for i in range(1, 100)]
    assert set(components_by_union_find(graph).values()) == {1}


def test_random_chain_is_one_path_whose_ids_are_not_in_order():
    graph = graphs.chain_random(1_000, seed=3)
    assert_canonical_edge_list(graph)
    assert len(graph.nodes) == 1_000 and len(graph.edges) == 999
    degrees = np.bincount(graph.edges.ravel())
    assert sorted(degrees[degrees > 0].tolist()).count(1) == 2, "a path has two ends"
    assert set(components_by_union_find(graph).values()) == {1}
    assert not (graph.edges[:, 1] - graph.edges[:, 0] == 1).all()
    assert graphs.chain_random(1_000, seed=3).edges.tolist() == graph.edges.tolist(), "seeded"


def test_hub_links_one_node_to_every_other():
    graph = graphs.hub(500, seed=1)
    assert_canonical_edge_list(graph)
    assert len(graph.nodes) == 501 and len(graph.edges) == 500
    degrees = np.bincount(graph.edges.ravel())
    assert degrees.max() == 500
    assert set(components_by_union_find(graph).values()) == {1}


def test_giant_is_one_component_with_extra_edges():
    graph = graphs.giant(2_000, extra_edge_ratio=0.5, seed=2)
    assert_canonical_edge_list(graph)
    assert len(graph.nodes) == 2_000
    assert 2_000 - 1 < len(graph.edges) <= 2_000 - 1 + 1_000
    assert set(components_by_union_find(graph).values()) == {1}


def test_canonical_labels_name_each_component_by_its_smallest_node():
    nodes, labels = graphs.canonical_labels(np.array([7, 3, 5, 9]), np.array(["b", "a", "b", "a"]))
    assert nodes.tolist() == [3, 5, 7, 9]
    assert labels.tolist() == [3, 5, 5, 3]


def test_same_partition_ignores_label_names_and_row_order():
    nodes = np.array([1, 2, 3, 4, 5])
    assert graphs.same_partition((nodes, np.array([10, 10, 20, 20, 30])),
                                 (nodes[::-1], np.array([5, 4, 4, 1, 1])))


def test_same_partition_sees_a_split_a_merge_and_a_missing_node():
    nodes = np.array([1, 2, 3, 4])
    together = (nodes, np.array([1, 1, 3, 3]))
    assert not graphs.same_partition(together, (nodes, np.array([1, 2, 3, 3])))  # split
    assert not graphs.same_partition(together, (nodes, np.array([1, 1, 1, 1])))  # merged
    assert not graphs.same_partition(together, (nodes[:3], np.array([1, 1, 3])))  # a node missing


def test_scipy_solver_agrees_with_union_find():
    graph = graphs.Graph("two", np.array([1, 2, 3, 10, 11, 12]), graphs.deduplicate_edges([[3, 1], [11, 12]]))
    run = graphs.solve_scipy(graph)
    expected = components_by_union_find(graph)
    assert graphs.same_partition(run.assignment, (np.array(list(expected)), np.array(list(expected.values()))))
    assert run.details["components"] == 4


def test_operation_stats_are_read_from_dbt_output():
    stdout = '\x1b[0m12:00:00  connected_components: 3 rounds, 5 pointer jumps\n' \
             'bench_connected_components {"rounds": 3, "jumps": 5, "round_seconds": [0.1, 0.2, 0.1], "seconds": 0.9}\n'
    assert graphs.parse_operation_stats(stdout) == {"rounds": 3, "jumps": 5, "round_seconds": [0.1, 0.2, 0.1],
                                                    "seconds": 0.9}
    assert graphs.parse_operation_stats("Encountered an error") is None


def test_the_median_run_is_reported_and_a_failed_run_wins():
    runs = [graphs.SolverRun("ok", seconds, details={"rounds": rounds}) for seconds, rounds in [(0.9, 1), (0.3, 2), (0.5, 3)]]
    assert graphs.median_run(runs).details == {"rounds": 3}
    assert graphs.median_run(runs[:2]).seconds == 0.3  # the lower middle of an even count
    stopped = graphs.SolverRun("timeout", None, details={"stopped_after": 60.0})
    assert graphs.median_run(runs[:1] + [stopped]) is stopped


def result(**overrides) -> graphs.FamilyResult:
    values = dict(family="chain_sorted", nodes=10, edges=9, components=1,
                  seconds={"project": 2.0, "scipy": 0.5, "splink": None, "cte": 1.0},
                  run_seconds={"project": [2.0], "scipy": [0.5], "splink": [], "cte": [1.0]},
                  status={"project": "ok", "scipy": "ok", "splink": "timeout", "cte": "ok"},
                  timeout_seconds=60.0, stopped_after={"splink": 60.0}, project_wall_seconds=9.0, project_rounds=12, project_jumps=20,
                  project_round_seconds=[], partitions_equal=True)
    return graphs.FamilyResult(**{**values, **overrides})


def test_ratios_and_targets_of_a_family():
    r = result()
    assert r.ratio("scipy") == 4.0
    assert r.ratio("splink") == 30.0  # a lower bound: Splink timed out at 60 s
    assert r.ratio("cte") == 0.5
    assert r.targets() == {"within 5x of scipy": True, "faster than Splink": True,
                           "faster than the recursive CTE": False, "<= 10 rounds": False}
    failed = result(status={"project": "error: boom", "scipy": "ok", "splink": "ok", "cte": "ok"},
                    seconds={"project": None, "scipy": 0.5, "splink": 1.0, "cte": 1.0}, project_rounds=None)
    assert set(failed.targets().values()) == {None}


def test_markdown_table_marks_timeouts_and_missed_targets():
    table = graphs.markdown_table([result(), result(family="hub", partitions_equal=False, disagreeing=["cte"])])
    header, rule, chain, hub = table.splitlines()
    assert header.count("|") == rule.count("|") == chain.count("|")
    assert "> 60 (timeout)" in chain and "> 30.0x" in chain
    oom = graphs.markdown_table([result(status={"project": "ok", "scipy": "ok", "splink": "ok", "cte": "out of memory"},
                                        seconds={"project": 2.0, "scipy": 0.5, "splink": 1.0, "cte": None},
                                        stopped_after={"cte": 40.0})]).splitlines()[-1]
    assert "> 40 (out of memory)" in oom and "> 20.0x" in oom
    assert "faster than the recursive CTE, <= 10 rounds" in chain
    assert "NO: cte" in hub


def test_family_names():
    assert graphs.family_names("all", warehouse_given=False) == ["chain_sorted", "chain_random", "hub", "giant"]
    assert graphs.family_names("all", warehouse_given=True)[-1] == "identity"
    assert graphs.family_names("hub, giant", warehouse_given=False) == ["hub", "giant"]
    with pytest.raises(SystemExit):
        graphs.family_names("identity", warehouse_given=False)
    with pytest.raises(SystemExit):
        graphs.family_names("cycle", warehouse_given=False)
