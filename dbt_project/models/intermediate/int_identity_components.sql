{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='node_id',
    key_only_when_null='identifier_type',
    on_schema_change='append_new_columns',
    post_hook="{{ drop_components_work() }}",
) }}

{#- The identity graph: connected components over the edges, then merge protection (components
    over a max_per_profile limit are split, weakest links first). A profile's id is derived from its
    oldest identifier, so re-running on the same data gives the same ids and a merge keeps the
    older profile's id.

    Incremental: a build recomputes only the components that changed, and keeps the others as the
    last build left them (renumbered: node numbers follow first sightings, which new identifiers
    shift). An identifier is changed when it is new or gone, when its first sighting, message count
    or junk status differs from the last build's, or when int_identifiers rewrote a message of it
    since; a component changed when it holds a changed identifier or an edge links it to one (every
    edge that came or went has a changed end, or both ends in one such component). Merge protection
    decides within a component, by the order of its own identifiers, so recomputing some components
    gives what recomputing all would. Under other identity rules, or a table from before these
    columns, every component is recomputed. Each build writes every row (node numbers move). -#}
{%- set rules_fingerprint = local_md5(tojson(identity_rules(), sort_keys=true)) -%}
{%- set update = is_incremental() and this is not string
    and not missing_columns(this, ['graph_component_id', 'first_seen_at', 'message_count', 'is_junk',
                                   'rules_fingerprint', 'built_at'])
    and not built_under_other_rules(this, rules_fingerprint) -%}
{%- set all_nodes = ref('int_identity_nodes') -%}
{%- set identifiers = ref('int_identifiers') -%}
{%- set nodes = all_nodes -%}
{%- if update -%}
    {%- set work = cc_work_relations(update_work_parts()) -%}
    {%- set nodes = work.update_nodes -%}
    {%- if graph_loops_run() -%}
        {#- The changed identifiers: new, gone, counted or seen differently, or in a rewritten message;
            the components to recompute: those of the changed identifiers and of their neighbours;
            and their identifiers now, with the new ones: the part of the graph this build works on. -#}
        {%- do run_statements(
            cc_replace_table(work.update_changed,
                "select coalesce(current.identifier_type, previous.identifier_type) as identifier_type,"
                ~ " coalesce(current.identifier_value, previous.identifier_value) as identifier_value"
                ~ " from " ~ all_nodes ~ " as current full outer join " ~ this ~ " as previous"
                ~ " on previous.identifier_type = current.identifier_type"
                ~ " and previous.identifier_value = current.identifier_value"
                ~ " where current.node_id is null or previous.node_id is null"
                ~ " or current.message_count <> previous.message_count or current.is_junk <> previous.is_junk"
                ~ " or current.first_seen_at <> previous.first_seen_at"
                ~ " or (current.first_seen_at is null) <> (previous.first_seen_at is null)"
                ~ " union select identifier_type, identifier_value from " ~ identifiers
                ~ " where is_linkable and built_at > (select max(built_at) from " ~ this ~ ")")
            ~ "; " ~ cc_replace_table(work.update_components,
                "select distinct previous.graph_component_id from " ~ this ~ " as previous join ("
                ~ " select identifier_type, identifier_value from " ~ work.update_changed
                ~ " union select edges.to_type, edges.to_value from " ~ ref('int_identity_edges') ~ " as edges"
                ~ " join " ~ work.update_changed ~ " as changed on changed.identifier_type = edges.from_type"
                ~ " and changed.identifier_value = edges.from_value"
                ~ " union select edges.from_type, edges.from_value from " ~ ref('int_identity_edges') ~ " as edges"
                ~ " join " ~ work.update_changed ~ " as changed on changed.identifier_type = edges.to_type"
                ~ " and changed.identifier_value = edges.to_value"
                ~ ") as reached on reached.identifier_type = previous.identifier_type"
                ~ " and reached.identifier_value = previous.identifier_value")
            ~ "; " ~ cc_replace_table(work.update_nodes,
                "select current.* from " ~ all_nodes ~ " as current left join " ~ this ~ " as previous"
                ~ " on previous.identifier_type = current.identifier_type"
                ~ " and previous.identifier_value = current.identifier_value"
                ~ " where previous.node_id is null or previous.graph_component_id in"
                ~ " (select graph_component_id from " ~ work.update_components ~ ")")
        ) -%}
        {%- set counts = run_query("select (select count(*) from " ~ work.update_nodes ~ "), (select count(*) from "
                                   ~ all_nodes ~ ")").rows[0] -%}
        {{ log("int_identity_components: recomputing the components of " ~ counts[0] ~ " of " ~ counts[1]
               ~ " identifiers", info=true) }}
    {%- endif -%}
{%- endif -%}
{%- set node_edges -%}
    select source_node.node_id as src, target_node.node_id as dst, edges.weak_priority, edges.event_at, edges.message_id
    from {{ ref('int_identity_edges') }} as edges
    join {{ nodes }} as source_node
        on source_node.identifier_type = edges.from_type and source_node.identifier_value = edges.from_value
    join {{ nodes }} as target_node
        on target_node.identifier_type = edges.to_type and target_node.identifier_value = edges.to_value
{%- endset -%}
{%- set components_sql = connected_components("select node_id from " ~ nodes, node_edges) -%}

with

clusters as (

    {{ enforce_identifier_limits(
        components_sql,
        "select node_id, identifier_type, max_per_profile from " ~ nodes,
        node_edges
    ) }}

),

nodes as (

    select * from {{ nodes }}

),

recomputed as (

    select
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.node_id,
        clusters.cluster_id as component_id,
        'prof_' || substr({{ dbt.hash("root.identifier_type || ':' || root.identifier_value") }}, 1, 20) as derived_profile_id,
        clusters.component_id as graph_component_id,
        nodes.first_seen_at,
        nodes.message_count,
        nodes.is_junk

    from nodes
    join clusters on clusters.node_id = nodes.node_id
    join nodes as root on root.node_id = clusters.cluster_id

),
{%- if update %}

-- The components this build did not recompute, as the last build left them: their identifiers keep
-- their order, so each profile's smallest node (its oldest identifier) is the same identifier.
kept as (

    select
        current.identifier_type,
        current.identifier_value,
        current.node_id,
        min(current.node_id) over (partition by previous.component_id) as component_id,
        previous.derived_profile_id,
        min(current.node_id) over (partition by previous.graph_component_id) as graph_component_id,
        current.first_seen_at,
        current.message_count,
        current.is_junk

    from {{ all_nodes }} as current
    join {{ this }} as previous
        on previous.identifier_type = current.identifier_type
        and previous.identifier_value = current.identifier_value
    -- an anti-join: `not in` costs DuckDB more here
    left join {{ work.update_components }} as recomputed
        on recomputed.graph_component_id = previous.graph_component_id
    where recomputed.graph_component_id is null

),
{%- endif %}

components as (

    select * from recomputed
    {%- if update %}
    union all
    select * from kept
    {%- endif %}

)

select
    *,
    '{{ rules_fingerprint }}' as rules_fingerprint,
    {{ build_timestamp() }} as built_at

from components
{%- if is_incremental() %}

-- Every row is written again: one key-only row with a null key names them all (replace_keys).
union all

select
    {%- for column in ['identifier_type', 'identifier_value'] %}
    cast(null as {{ dbt.type_string() }}) as {{ column }},
    {%- endfor %}
    {%- for column in ['node_id', 'component_id'] %}
    cast(null as {{ dbt.type_bigint() }}) as {{ column }},
    {%- endfor %}
    cast(null as {{ dbt.type_string() }}) as derived_profile_id,
    cast(null as {{ dbt.type_bigint() }}) as graph_component_id,
    cast(null as timestamp) as first_seen_at,
    cast(null as {{ dbt.type_bigint() }}) as message_count,
    cast(null as {{ dbt.type_boolean() }}) as is_junk,
    cast(null as {{ dbt.type_string() }}) as rules_fingerprint,
    cast(null as timestamp) as built_at
{%- endif %}
