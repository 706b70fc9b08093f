with

junk as (

    select * from {{ ref('int_identity_junk') }}

),

nodes as (

    select * from {{ ref('int_identity_nodes') }}

),

components as (

    select * from {{ ref('int_profile_ids') }}

)

select
    junk.identifier_type,
    junk.identifier_value,
    junk.reason,
    junk.neighbour_type,
    junk.distinct_neighbours,
    junk.max_distinct_neighbours,
    junk.evidence_messages,
    junk.first_neighbour,
    junk.last_neighbour,
    junk.example_message_id,
    components.profile_id,
    nodes.first_seen_at,
    nodes.last_seen_at,
    nodes.message_count

from junk
join nodes
    on nodes.identifier_type = junk.identifier_type
    and nodes.identifier_value = junk.identifier_value
join components
    on components.identifier_type = junk.identifier_type
    and components.identifier_value = junk.identifier_value
