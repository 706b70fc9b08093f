{#- Connected components over an integer edge list, in portable SQL driven by a run_query loop.

    Each round works on a contracted graph whose nodes are the clusters still linked to others:
    every cluster hooks to its smallest neighbour (or stays a root when it is the smallest), the
    hooks are flattened by pointer jumping until each points at a root, and the edges are rewritten
    between roots, dropping those inside one cluster. Every hook goes to a smaller id, so no cycle
    can form; pointer jumping halves the depth of every tree per step, so a long chain costs a few
    steps, not one per node; and each round's work shrinks with the graph (settled clusters leave
    it). The hooks of retired clusters form a forest, flattened once at the end.

    nodes_sql: select returning `node_id` (integer, every node).
    edges_sql: select returning `src`, `dst` (integers).
    Returns the select of the result table: `node_id`, `component_id` (the smallest node id of the
    component). Working tables are named after the model and dropped by `drop_components_work`.
    Outside a model (run-operation bench_connected_components) `work_base` names them instead, and
    `stats` (a dict) receives the rounds, pointer jumps and each round's seconds. -#}
{% macro connected_components(nodes_sql, edges_sql, max_rounds=64, work_base=none, stats=none) %}
    {%- set work = cc_work_relations(base=work_base) -%}
    {%- if graph_loops_run() -%}
        {%- set remaining = cc_query_count(cc_replace_table(work.edges,
            "select distinct src, dst from (select src, dst from (" ~ edges_sql ~ ") as e"
            ~ " union all select dst as src, src as dst from (" ~ edges_sql ~ ") as e) as both_ways"
            ~ " where src <> dst") ~ "; " ~ cc_replace_table(work.forest,
            "select node_id, node_id as parent from (" ~ nodes_sql ~ ") as n where 1 = 0")
            ~ "; select count(*) from " ~ work.edges) -%}
        {%- set state = namespace(rounds=0, jumps=0, remaining=remaining) -%}
        {%- for round in range(max_rounds) if state.remaining > 0 -%}
            {%- set state.rounds = round + 1 -%}
            {%- set round_started = modules.datetime.datetime.now() if stats is not none else none -%}
            {#- Each cluster hooks to its smallest neighbour, or is a root (in the query of the first jump). -#}
            {{- cc_flatten(work.hooks, work.next, state, cc_replace_table(work.hooks,
                "select src as node_id, case when min(dst) < src then min(dst) else src end as parent"
                ~ " from " ~ work.edges ~ " group by src") ~ "; ") -}}
            {#- Retired clusters join the forest; the edges between the remaining roots go on. -#}
            {%- set state.remaining = cc_query_count(
                "insert into " ~ work.forest ~ " select node_id, parent from " ~ work.hooks
                ~ " where parent <> node_id; "
                ~ cc_replace_table(work.next,
                    "select distinct s.parent as src, d.parent as dst from " ~ work.edges ~ " as e"
                    ~ " join " ~ work.hooks ~ " as s on s.node_id = e.src"
                    ~ " join " ~ work.hooks ~ " as d on d.node_id = e.dst where s.parent <> d.parent")
                ~ "; " ~ cc_swap(work.next, work.edges) ~ "; select count(*) from " ~ work.edges) -%}
            {%- if stats is not none -%}
                {%- do stats.setdefault('round_seconds', []).append(
                    (modules.datetime.datetime.now() - round_started).total_seconds()) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if state.remaining > 0 -%}
            {{ exceptions.raise_compiler_error("connected_components did not converge in " ~ max_rounds ~ " rounds") }}
        {%- endif -%}
        {{- cc_flatten(work.forest, work.next, state) -}}
        {{ log("connected_components: " ~ state.rounds ~ " rounds, " ~ state.jumps ~ " pointer jumps", info=true) }}
        {%- if stats is not none -%}{%- do stats.update({'rounds': state.rounds, 'jumps': state.jumps}) -%}{%- endif -%}
    {%- endif %}
    select n.node_id, coalesce(f.parent, n.node_id) as component_id
    from ({{ nodes_sql }}) as n
    left join {{ work.forest }} as f on f.node_id = n.node_id
{% endmacro %}

{#- Pointer jumping on `pointers` (node_id, parent; a root points at itself or is absent) until
    every node points at a root: one query per step, which also counts the pointers that moved.
    `first` (statements) runs in the query of the first step. -#}
{% macro cc_flatten(pointers, scratch, state, first='') %}
    {%- set flat = namespace(done=false) -%}
    {%- for step in range(64) if not flat.done -%}
        {%- set moved = cc_query_count((first if step == 0 else '') ~ cc_replace_table(scratch,
            "select p.node_id, coalesce(q.parent, p.parent) as parent,"
            ~ " case when q.parent is not null and q.parent <> p.parent then 1 else 0 end as moved"
            ~ " from " ~ pointers ~ " as p left join " ~ pointers ~ " as q on q.node_id = p.parent")
            ~ "; " ~ cc_swap(scratch, pointers) ~ "; select coalesce(sum(moved), 0) from " ~ pointers) -%}
        {%- set state.jumps = state.jumps + 1 -%}
        {%- set flat.done = moved == 0 -%}
    {%- endfor -%}
    {%- if not flat.done -%}
        {{ exceptions.raise_compiler_error("pointer jumping did not finish in 64 steps") }}
    {%- endif -%}
{% endmacro %}

{#- Runs the statements and returns the number the last one selects. -#}
{% macro cc_query_count(sql) %}
    {{ return(run_statements(sql).columns[0].values()[0] | int) }}
{% endmacro %}

{#- `scratch` becomes `target` (a rename, not a copy). -#}
{% macro cc_swap(scratch, target) %}
    {{ return("drop table if exists " ~ target ~ "; alter table " ~ scratch ~ " rename to " ~ target.identifier) }}
{% endmacro %}

{#- The graph loops write working tables: only when models are being built (or an operation runs
    them), not when they are only compiled (dbt compile, dbt docs generate). -#}
{% macro graph_loops_run() %}
    {{ return(execute and flags.WHICH in ['run', 'build', 'run-operation']) }}
{% endmacro %}

{% macro cc_work_parts() %}
    {{ return(['edges', 'hooks', 'next', 'forest']) }}
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
    {{ return("drop table if exists " ~ relation ~ "; " ~ create_table_as_select(relation, sql)) }}
{% endmacro %}

{#- post-hook of a model that called connected_components: its working tables are not needed. -#}
{% macro drop_components_work() %}
    {%- set statements = [] -%}
    {%- for relation in cc_work_relations(cc_work_parts() + limit_work_parts()).values() -%}
        {%- do statements.append("drop table if exists " ~ relation) -%}
    {%- endfor -%}
    {{ return(adapter.dispatch('drop_components_work', 'identity_warehouse')(statements)) }}
{% endmacro %}

{% macro default__drop_components_work(statements) %}
    {{ return(statements | join('; ')) }}
{% endmacro %}

{#- Spark runs one statement per call: they are run here, and the hook itself is left empty. -#}
{% macro spark__drop_components_work(statements) %}
    {%- if execute -%}
        {%- for statement in statements -%}{%- do run_query(statement) -%}{%- endfor -%}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}
