{#- Connected components over an integer edge list, in portable SQL driven by a run_query loop.

    Each round works on a contracted graph whose nodes are the clusters still linked to others:
    every cluster hooks to the smallest cluster at most two steps away (or stays a root when it is
    that smallest one), the hooks are flattened by pointer jumping until each points at a root, and
    the edges are rewritten between roots, dropping those inside one cluster. Every hook goes to a
    smaller id, so no cycle can form; two linked clusters cannot both be roots, so every round
    merges; looking two steps away leaves fewer roots than one (on a chain, one in five clusters
    rather than one in three), so fewer rounds; pointer jumping halves the depth of every tree per
    step, so a long chain costs a few steps, not one per node; and each round's work shrinks with
    the graph (settled clusters leave it). The hooks of retired clusters form a forest, flattened
    once at the end.

    nodes_sql: select returning `node_id` (integer, every node).
    edges_sql: select returning `src`, `dst` (integers).
    Returns the select of the result table: `node_id`, `component_id` (the smallest node id of the
    component). Working tables are named after the model and dropped by `drop_components_work`.
    Outside a model (run-operation bench_connected_components) `work_base` names them instead, and
    `stats` (a dict) receives the rounds, pointer jumps and each round's seconds.

    Each statement is written out as SQL in a `set` block; the statements of one database call are
    separated by `;` (run_statements runs them). -#}
{% macro connected_components(nodes_sql, edges_sql, max_rounds=64, work_base=none, stats=none) %}
    {%- set work = cc_work_relations(base=work_base) -%}
    {%- if graph_loops_run() -%}
        {%- set state = namespace(rounds=0, jumps=0, remaining=1, before_hooks='') -%}
        {#- Each database call costs more than the work of a late round: a round is one call (the
            contraction of the round before, then the hooks of this one) plus one per pointer jump.
            The first call builds the symmetric edge list (reading edges_sql once: in the identity
            graph it is a join) and an empty forest instead. -#}
        {%- set edges_read_once -%}
            select src, dst from ({{ edges_sql }}) as e
        {%- endset -%}
        {%- set edges_both_ways -%}
            select distinct src, dst
            from (
                select src, dst from {{ work.next }}
                union all
                select dst as src, src as dst from {{ work.next }}
            ) as both_ways
            where src <> dst
        {%- endset -%}
        {%- set empty_forest -%}
            select node_id, node_id as parent from ({{ nodes_sql }}) as n where 1 = 0
        {%- endset -%}
        {%- set first_graph -%}
            {{ cc_replace_table(work.next, edges_read_once) }};
            {{ cc_replace_table(work.edges, edges_both_ways) }};
            {{ cc_replace_table(work.forest, empty_forest) }};
        {%- endset -%}
        {%- set state.before_hooks = first_graph -%}
        {%- for round in range(max_rounds + 1) if state.remaining > 0 -%}
            {%- set round_started = modules.datetime.datetime.now() -%}
            {#- Each cluster hooks to the smallest cluster within two steps of it, or is a root. -#}
            {%- set hooks -%}
                select e.src as node_id, min(near.smallest) as parent
                from {{ work.edges }} as e
                join (
                    select src as node_id, case when min(dst) < src then min(dst) else src end as smallest
                    from {{ work.edges }}
                    group by src
                ) as near on near.node_id = e.dst
                group by e.src
            {%- endset -%}
            {%- set hook_round -%}
                {{ state.before_hooks }}
                {{ cc_replace_table(work.hooks, hooks) }};
                select (select count(*) from {{ work.edges }}), ({{ cc_unflattened_count(work.hooks) }})
            {%- endset -%}
            {%- set counts = cc_query_counts(hook_round) -%}
            {%- set state.remaining = counts[0] -%}
            {%- if state.remaining > 0 -%}
                {%- if round == max_rounds -%}
                    {{ exceptions.raise_compiler_error("connected_components did not converge in " ~ max_rounds ~ " rounds") }}
                {%- endif -%}
                {%- set state.rounds = round + 1 -%}
                {%- set flattened = cc_flatten(work.hooks, work.next, state, counts[1]) -%}
                {#- Retired clusters join the forest; the edges between the remaining roots go on. -#}
                {%- set root_edges -%}
                    select distinct s.parent as src, d.parent as dst
                    from {{ work.edges }} as e
                    join {{ work.hooks }} as s on s.node_id = e.src
                    join {{ work.hooks }} as d on d.node_id = e.dst
                    where s.parent <> d.parent
                {%- endset -%}
                {%- set contraction -%}
                    {% if flattened %}{{ flattened }};{% endif %}
                    insert into {{ work.forest }} select node_id, parent from {{ work.hooks }} where parent <> node_id;
                    {{ cc_replace_table(work.next, root_edges) }};
                    {{ cc_swap(work.next, work.edges) }};
                {%- endset -%}
                {%- set state.before_hooks = contraction -%}
                {%- if stats is not none -%}
                    {%- do stats.setdefault('round_seconds', []).append(
                        (modules.datetime.datetime.now() - round_started).total_seconds()) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
        {#- After one round the forest holds only that round's flattened hooks. -#}
        {%- set flattened = cc_flatten(work.forest, work.next, state, 0 if state.rounds <= 1 else none) -%}
        {%- if flattened -%}{%- do run_statements(flattened) -%}{%- endif -%}
        {{ log("connected_components: " ~ state.rounds ~ " rounds, " ~ state.jumps ~ " pointer jumps", info=true) }}
        {%- if stats is not none -%}{%- do stats.update({'rounds': state.rounds, 'jumps': state.jumps}) -%}{%- endif -%}
    {%- endif %}
    select n.node_id, coalesce(f.parent, n.node_id) as component_id
    from ({{ nodes_sql }}) as n
    left join {{ work.forest }} as f on f.node_id = n.node_id
{% endmacro %}

{#- Pointer jumping on `pointers` (node_id, parent; a root points at itself or is absent) until
    every node points at a root: one query per step, which also counts the pointers still short of
    a root, so no step is spent finding that nothing moves. `unflattened` is that count before the
    first step, when the caller knows it (none: at least one step is taken). The steps write
    `scratch` and `pointers` in turn; when the last one wrote `scratch`, the statements returned
    (for the caller's next query, or none) rename it to `pointers`. -#}
{% macro cc_flatten(pointers, scratch, state, unflattened=none) %}
    {%- set flat = namespace(left=1 if unflattened is none else unflattened, source=pointers, target=scratch) -%}
    {%- for step in range(64) if flat.left > 0 -%}
        {%- set jumped -%}
            select p.node_id, coalesce(q.parent, p.parent) as parent
            from {{ flat.source }} as p
            left join {{ flat.source }} as q on q.node_id = p.parent
        {%- endset -%}
        {%- set jump -%}
            {{ cc_replace_table(flat.target, jumped) }};
            {{ cc_unflattened_count(flat.target) }}
        {%- endset -%}
        {%- set flat.left = cc_query_counts(jump)[0] -%}
        {%- set state.jumps = state.jumps + 1 -%}
        {%- set written = flat.target -%}
        {%- set flat.target = flat.source -%}
        {%- set flat.source = written -%}
    {%- endfor -%}
    {%- if flat.left > 0 -%}
        {{ exceptions.raise_compiler_error("pointer jumping did not finish in 64 steps") }}
    {%- endif -%}
    {{ return(cc_swap(scratch, pointers) if flat.source.identifier == scratch.identifier else "") }}
{% endmacro %}

{#- The pointers whose parent is not a root: one step of pointer jumping would move them. -#}
{% macro cc_unflattened_count(pointers) %}
    {%- set unflattened -%}
        select count(*)
        from {{ pointers }} as p
        join {{ pointers }} as q on q.node_id = p.parent
        where q.parent <> p.parent
    {%- endset -%}
    {{ return(unflattened) }}
{% endmacro %}

{#- Runs the statements and returns the numbers of the first row the last one selects. -#}
{% macro cc_query_counts(sql) %}
    {%- set counts = [] -%}
    {%- for value in run_statements(sql).rows[0] -%}{%- do counts.append(value | int) -%}{%- endfor -%}
    {{ return(counts) }}
{% endmacro %}

{#- `scratch` becomes `target` (a rename, not a copy). -#}
{% macro cc_swap(scratch, target) %}
    {%- set swap -%}
        drop table if exists {{ target }};
        alter table {{ scratch }} rename to {{ target.identifier }}
    {%- endset -%}
    {{ return(swap) }}
{% endmacro %}

{% macro graph_loops_run() %}
    {{ return(execute and flags.WHICH in ['run', 'build', 'run-operation']) }}
{% endmacro %}

{% macro cc_work_parts() %}
    {{ return(['edges', 'hooks', 'next', 'forest']) }}
{% endmacro %}

{#- int_identity_components' own: in an incremental build the changed identifiers and the components
    to recompute; the nodes a build works on, numbered. -#}
{% macro update_work_parts() %}
    {{ return(['update_changed', 'update_components', 'update_nodes']) }}
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

{#- Statements that make `relation` the result of `sql`, whether or not it exists. -#}
{% macro cc_replace_table(relation, sql) %}
    {{ return(adapter.dispatch('cc_replace_table', 'identity_warehouse')(relation, sql)) }}
{% endmacro %}

{% macro default__cc_replace_table(relation, sql) %}
    {%- set replace -%}
        drop table if exists {{ relation }};
        {{ create_table_as_select(relation, sql) }}
    {%- endset -%}
    {{ return(replace) }}
{% endmacro %}

{#- One statement rather than two: the graph loops run many of them on small tables. -#}
{% macro duckdb__cc_replace_table(relation, sql) %}
    {%- set replace -%}
        create or replace table {{ relation }} as {{ sql }}
    {%- endset -%}
    {{ return(replace) }}
{% endmacro %}

{#- post-hook of a model that called connected_components (or, with `base`, the graph benchmark):
    its working tables are not needed. -#}
{% macro drop_components_work(base=none) %}
    {%- set statements = [] -%}
    {%- for relation in cc_work_relations(cc_work_parts() + limit_work_parts() + update_work_parts(), base=base).values() -%}
        {%- set drop -%}drop table if exists {{ relation }}{%- endset -%}
        {%- do statements.append(drop) -%}
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
