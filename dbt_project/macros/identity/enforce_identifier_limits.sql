{#- Merge protection: split the components that break a `max_per_profile` limit, the way Kruskal
    builds a forest. Within such a component the links are taken strongest first (the priority of
    the weaker identifier of the link, then the earliest message, then the message id) and a link is
    made only if the two clusters it joins stay within every limit together; so when a link would
    push a profile over a limit, the link through the lowest-priority identifier is the one not made.
    The order is a function of the data alone: file order and the split of data into runs do not
    change the result. Components within their limits (almost all) are left as they are.

    components_sql: `node_id`, `component_id`;  typed_nodes_sql: `node_id`, `identifier_type`,
    `max_per_profile`;  ordered_edges_sql: `src`, `dst`, `weak_priority`, `event_at`, `message_id`.
    Returns a select of `node_id`, `cluster_id` (the smallest node id of the node's profile) and
    `component_id` (its component's, before the split). Each statement is written out as SQL in a
    `set` block, as in connected_components. -#}
{% macro limit_work_parts() %}
    {{ return(['limit_typed', 'limit_violating', 'limit_clusters', 'limit_edges', 'limit_next', 'limit_decided']) }}
{% endmacro %}

{% macro enforce_identifier_limits(components_sql, typed_nodes_sql, ordered_edges_sql, max_rounds=2000) %}
    {%- set work = cc_work_relations(limit_work_parts()) -%}
    {%- if graph_loops_run() -%}
        {%- set typed -%}
            select c.node_id, c.component_id, n.identifier_type, n.max_per_profile
            from ({{ components_sql }}) as c
            join ({{ typed_nodes_sql }}) as n on n.node_id = c.node_id
        {%- endset -%}
        {%- set violating -%}
            select distinct component_id
            from (
                select component_id, identifier_type, count(*) as identifiers, max(max_per_profile) as max_per_profile
                from {{ work.limit_typed }}
                group by 1, 2
            ) as counted
            where identifiers > max_per_profile
        {%- endset -%}
        {%- set clusters -%}
            select node_id, component_id, node_id as cluster_id, identifier_type, max_per_profile
            from {{ work.limit_typed }}
            where component_id in (select component_id from {{ work.limit_violating }})
        {%- endset -%}
        {%- set ranked_edges -%}
            select c.component_id, e.src, e.dst,
                row_number() over (
                    partition by c.component_id order by e.weak_priority, e.event_at, e.message_id, e.src, e.dst
                ) as edge_rank
            from ({{ ordered_edges_sql }}) as e
            join {{ work.limit_clusters }} as c on c.node_id = e.src
        {%- endset -%}
        {%- set setup -%}
            {{ cc_replace_table(work.limit_typed, typed) }};
            {{ cc_replace_table(work.limit_violating, violating) }};
            {{ cc_replace_table(work.limit_clusters, clusters) }};
            {{ cc_replace_table(work.limit_edges, ranked_edges) }}
        {%- endset -%}
        {%- do run_statements(setup) -%}
        {%- set state = namespace(done=false, rounds=0, refused=0, merge='') -%}
        {#- One query per round: the merges decided in the round before, then the next decision. The
            queue of links is kept in `limit_edges`: each round keeps the links still between two
            clusters, after the one decided in the round before. -#}
        {%- for round in range(max_rounds + 1) if not state.done -%}
            {%- set open_links -%}
                select e.component_id, e.src, e.dst, e.edge_rank, s.cluster_id as src_cluster, d.cluster_id as dst_cluster
                from {{ work.limit_edges }} as e
                join {{ work.limit_clusters }} as s on s.node_id = e.src
                join {{ work.limit_clusters }} as d on d.node_id = e.dst
                {%- if round > 0 %}
                left join {{ work.limit_decided }} as decided on decided.component_id = e.component_id
                {%- endif %}
                where s.cluster_id <> d.cluster_id
                {%- if round > 0 %}
                    and (decided.edge_rank is null or e.edge_rank > decided.edge_rank)
                {%- endif %}
            {%- endset -%}
            {#- The first open link of each component is next. -#}
            {%- set decisions -%}
                with picked as (
                    select * from (
                        select *, row_number() over (partition by component_id order by edge_rank) as pick
                        from {{ work.limit_edges }}
                    ) as ranked
                    where pick = 1
                ),
                ends as (
                    select component_id, src_cluster as cluster_id from picked
                    union all
                    select component_id, dst_cluster from picked
                ),
                combined as (
                    select ends.component_id, k.identifier_type, count(*) as identifiers,
                        max(k.max_per_profile) as max_per_profile
                    from ends
                    join {{ work.limit_clusters }} as k on k.cluster_id = ends.cluster_id
                    group by 1, 2
                )
                select p.component_id, p.src_cluster, p.dst_cluster, p.edge_rank,
                    max(case when c.identifiers > c.max_per_profile then 1 else 0 end) as refused
                from picked as p
                join combined as c on c.component_id = p.component_id
                group by 1, 2, 3, 4
            {%- endset -%}
            {%- set decide -%}
                {{ state.merge }}
                {{ cc_replace_table(work.limit_next, open_links) }};
                {{ cc_swap(work.limit_next, work.limit_edges) }};
                {{ cc_replace_table(work.limit_decided, decisions) }};
                select count(*), coalesce(sum(refused), 0) from {{ work.limit_decided }}
            {%- endset -%}
            {%- set decided = cc_query_counts(decide) -%}
            {%- if decided[0] == 0 -%}
                {%- set state.done = true -%}
            {%- elif round == max_rounds -%}
                {{ exceptions.raise_compiler_error("enforce_identifier_limits did not finish in " ~ max_rounds ~ " rounds") }}
            {%- else -%}
                {%- set state.rounds = round + 1 -%}
                {%- set state.refused = state.refused + decided[1] -%}
                {#- An accepted link merges its two clusters (into the smaller id). -#}
                {%- set merged -%}
                    select k.node_id, k.component_id, coalesce(m.new_cluster, k.cluster_id) as cluster_id,
                        k.identifier_type, k.max_per_profile
                    from {{ work.limit_clusters }} as k
                    left join (
                        select src_cluster as old_cluster, least(src_cluster, dst_cluster) as new_cluster
                        from {{ work.limit_decided }} where refused = 0
                        union all
                        select dst_cluster, least(src_cluster, dst_cluster)
                        from {{ work.limit_decided }} where refused = 0
                    ) as m on m.old_cluster = k.cluster_id
                {%- endset -%}
                {%- set merge -%}
                    {{ cc_replace_table(work.limit_next, merged) }};
                    {{ cc_swap(work.limit_next, work.limit_clusters) }};
                {%- endset -%}
                {%- set state.merge = merge -%}
            {%- endif -%}
        {%- endfor -%}
        {{ log("enforce_identifier_limits: " ~ state.rounds ~ " rounds, " ~ state.refused ~ " links refused", info=true) }}
    {%- endif %}
    select node_id, component_id as cluster_id, component_id from {{ work.limit_typed }}
    where component_id not in (select component_id from {{ work.limit_violating }})
    union all
    select node_id, cluster_id, component_id from {{ work.limit_clusters }}
{% endmacro %}
