{{ config(post_hook="{{ drop_components_work() }}") }}

{#- The identity graph: connected components over the edges, then merge protection (components
    over a max_per_profile limit are split, weakest links first). A profile's id is derived from its
    oldest identifier, so re-running on the same data gives the same ids and a merge keeps the
    older profile's id. -#}
{%- set nodes = ref('int_identity_nodes') -%}
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

)

select
    nodes.identifier_type,
    nodes.identifier_value,
    nodes.node_id,
    clusters.cluster_id as component_id,
    'prof_' || substr({{ dbt.hash("root.identifier_type || ':' || root.identifier_value") }}, 1, 20) as derived_profile_id

from nodes
join clusters on clusters.node_id = nodes.node_id
join nodes as root on root.node_id = clusters.cluster_id
