{#- Connected components over an integer edge list, in portable SQL driven by a run_query loop.

    Each round every cluster hooks its root to the smallest root among its neighbouring clusters,
    then pointers are flattened by repeated self-joins (pointer jumping) until every node points at
    a root. Roots only ever point to smaller ids, so no cycle can form; pointer jumping halves the
    depth of every tree per step, which keeps long chains cheap.

    nodes_sql: select returning `node_id` (integer, every node).
    edges_sql: select returning `src`, `dst` (integers).
    Returns the select of the result table: `node_id`, `component_id` (the smallest node id of the
    component). Working tables are named after the model and dropped by `drop_components_work`.
    Outside a model (run-operation bench_connected_components) `work_base` names them instead, and
    `stats` (a dict) receives the rounds, pointer jumps and each round's seconds. -#}
{% macro connected_components(nodes_sql, edges_sql, max_rounds=64, work_base=none, stats=none) %}
    {%- set work = cc_work_relations(base=work_base) -%}
    {%- if graph_loops_run() -%}
        {%- do run_query(cc_replace_table(work.edges,
            "select distinct src, dst from (select src, dst from (" ~ edges_sql ~ ") as e"
            ~ " union all select dst as src, src as dst from (" ~ edges_sql ~ ") as e) as both_ways"
            ~ " where src <> dst")) -%}
        {%- do run_query(cc_replace_table(work.parent,
            "select n.node_id, coalesce(least(n.node_id, min(e.dst)), n.node_id) as parent"
            ~ " from (" ~ nodes_sql ~ ") as n left join " ~ work.edges ~ " as e on e.src = n.node_id"
            ~ " group by n.node_id")) -%}
        {%- set state = namespace(converged=false, rounds=0, jumps=0) -%}
        {%- for round in range(max_rounds) if not state.converged -%}
            {%- set state.rounds = round + 1 -%}
            {%- set round_started = modules.datetime.datetime.now() if stats is not none else none -%}
            {{- cc_flatten(work, state) -}}
            {%- do run_query(cc_replace_table(work.hooks,
                "select p.parent as root, min(q.parent) as new_parent"
                ~ " from " ~ work.edges ~ " as e"
                ~ " join " ~ work.parent ~ " as p on p.node_id = e.src"
                ~ " join " ~ work.parent ~ " as q on q.node_id = e.dst"
                ~ " where q.parent < p.parent group by p.parent")) -%}
            {%- set hooks = run_query("select count(*) from " ~ work.hooks).columns[0].values()[0] -%}
            {%- if hooks == 0 -%}
                {%- set state.converged = true -%}
            {%- else -%}
                {%- do run_query(cc_replace_table(work.next,
                    "select p.node_id, case when h.root is null then p.parent else h.new_parent end as parent"
                    ~ " from " ~ work.parent ~ " as p left join " ~ work.hooks ~ " as h on h.root = p.parent")) -%}
                {%- do run_query(cc_replace_table(work.parent, "select * from " ~ work.next)) -%}
            {%- endif -%}
            {%- if stats is not none -%}
                {%- do stats.setdefault('round_seconds', []).append(
                    (modules.datetime.datetime.now() - round_started).total_seconds()) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if not state.converged -%}
            {{ exceptions.raise_compiler_error("connected_components did not converge in " ~ max_rounds ~ " rounds") }}
        {%- endif -%}
        {{ log("connected_components: " ~ state.rounds ~ " rounds, " ~ state.jumps ~ " pointer jumps", info=true) }}
        {%- if stats is not none -%}{%- do stats.update({'rounds': state.rounds, 'jumps': state.jumps}) -%}{%- endif -%}
    {%- endif %}
    select node_id, parent as component_id from {{ work.parent }}
{% endmacro %}

{#- Pointer jumping until every node points at a root. -#}
{% macro cc_flatten(work, state) %}
    {%- set flat = namespace(done=false) -%}
    {%- for step in range(64) if not flat.done -%}
        {%- set deep = run_query(
            "select count(*) from " ~ work.parent ~ " as p join " ~ work.parent ~ " as q"
            ~ " on q.node_id = p.parent where q.parent <> p.parent").columns[0].values()[0] -%}
        {%- if deep == 0 -%}
            {%- set flat.done = true -%}
        {%- else -%}
            {%- set state.jumps = state.jumps + 1 -%}
            {%- do run_query(cc_replace_table(work.next,
                "select p.node_id, q.parent from " ~ work.parent ~ " as p join " ~ work.parent ~ " as q"
                ~ " on q.node_id = p.parent")) -%}
            {%- do run_query(cc_replace_table(work.parent, "select * from " ~ work.next)) -%}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}

{#- The graph loops write working tables: only when models are being built (or an operation runs
    them), not when they are only compiled (dbt compile, dbt docs generate). -#}
{% macro graph_loops_run() %}
    {{ return(execute and flags.WHICH in ['run', 'build', 'run-operation']) }}
{% endmacro %}

{% macro cc_work_parts() %}
    {{ return(['edges', 'parent', 'next', 'hooks']) }}
{% endmacro %}

{#- Working tables of the graph macros, named after the model that calls them (or `base`). -#}
{% macro cc_work_relations(parts=none, base=none) %}
    {%- set base = base or this -%}
    {%- set prefix = base.identifier ~ '__cc_' -%}
    {%- set names = {} -%}
    {%- for part in (parts or cc_work_parts()) -%}
        {%- do names.update({part: api.Relation.create(database=base.database, schema=base.schema,
                                                         identifier=prefix ~ part)}) -%}
    {%- endfor -%}
    {{ return(names) }}
{% endmacro %}

{% macro cc_replace_table(relation, sql) %}
    {{ return("drop table if exists " ~ relation ~ "; create table " ~ relation ~ " as " ~ sql) }}
{% endmacro %}

{#- post-hook of a model that called connected_components: its working tables are not needed. -#}
{% macro drop_components_work() %}
    {%- set statements = [] -%}
    {%- for relation in cc_work_relations(cc_work_parts() + limit_work_parts()).values() -%}
        {%- do statements.append("drop table if exists " ~ relation) -%}
    {%- endfor -%}
    {{ return(statements | join('; ')) }}
{% endmacro %}
