{{ config(post_hook="{{ drop_components_work() }}") }}

{#- The identity graph: connected components over the edges. A component is a person; its id is
    derived from its oldest identifier, so re-running on the same data gives the same ids. -#}
{%- set nodes_sql = "select node_id from " ~ ref('int_identity_nodes') -%}
{%- set edges_sql -%}
    select source_node.node_id as src, target_node.node_id as dst
    from {{ ref('int_identity_edges') }} as edges
    join {{ ref('int_identity_nodes') }} as source_node
        on source_node.identifier_type = edges.from_type and source_node.identifier_value = edges.from_value
    join {{ ref('int_identity_nodes') }} as target_node
        on target_node.identifier_type = edges.to_type and target_node.identifier_value = edges.to_value
{%- endset -%}

with

components as (

    {{ connected_components(nodes_sql, edges_sql) }}

),

nodes as (

    select * from {{ ref('int_identity_nodes') }}

)

select
    nodes.identifier_type,
    nodes.identifier_value,
    nodes.node_id,
    components.component_id,
    'prof_' || substr({{ dbt.hash("root.identifier_type || ':' || root.identifier_value") }}, 1, 20) as profile_id

from nodes
join components on components.node_id = nodes.node_id
join nodes as root on root.node_id = components.component_id
