with

nodes as (

    select * from {{ ref('int_identity_nodes') }}

),

components as (

    select * from {{ ref('int_profile_ids') }}

)

select
    nodes.identifier_type,
    nodes.identifier_value,
    components.profile_id,
    nodes.first_seen_at,
    nodes.last_seen_at,
    nodes.message_count

from nodes
join components
    on components.identifier_type = nodes.identifier_type
    and components.identifier_value = nodes.identifier_value
