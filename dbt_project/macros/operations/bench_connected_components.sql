{#- The project's connected components on any integer graph, for the graph benchmark
    (benchmarks/graphs.py):

        dbt run-operation bench_connected_components --args '{nodes: "bench.nodes", edges: "bench.edges", result: "bench.cc_project"}'

    nodes: a table with `node_id`; edges: a table with `src`, `dst` (integers). The result table gets
    `node_id`, `component_id`. Prints one line `bench_connected_components {json}` with the rounds, the
    pointer jumps, each round's seconds and the macro's own elapsed seconds (after its first query). -#}
{% macro bench_connected_components(nodes, edges, result, max_rounds=64) %}
    {%- set result_relation = _bench_relation(result) -%}
    {%- do run_query("create schema if not exists " ~ result_relation.schema) -%}
    {#- Timed from here: dbt's first query in a process takes 60-250 ms longer than the next ones
        (lazy imports, macro compilation), which a pipeline run pays once, before any model. -#}
    {%- set started = modules.datetime.datetime.now() -%}
    {%- set stats = {} -%}
    {%- set components_sql = connected_components(
        "select node_id from " ~ nodes, "select src, dst from " ~ edges,
        max_rounds=max_rounds, work_base=result_relation, stats=stats) -%}
    {%- do run_statements("drop table if exists " ~ result_relation ~ "; " ~ create_table_as_select(result_relation, components_sql)) -%}
    {%- set drops = drop_components_work(base=result_relation) -%}
    {%- if drops -%}{%- do run_statements(drops) -%}{%- endif -%}
    {%- do stats.update({'seconds': (modules.datetime.datetime.now() - started).total_seconds()}) -%}
    {%- do print("bench_connected_components " ~ tojson(stats)) -%}
{% endmacro %}

{#- `schema.table` (or `table`, in the target's schema) as a relation of the target database. -#}
{% macro _bench_relation(name) %}
    {%- set parts = name.split('.') -%}
    {{ return(api.Relation.create(database=target.database,
                                  schema=parts[0] if parts | length > 1 else target.schema,
                                  identifier=parts[-1])) }}
{% endmacro %}
