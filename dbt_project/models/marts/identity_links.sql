{#- Why each identifier is in its profile: every link a message or contact row makes, with its
    evidence, and whether it was made or refused by merge protection. -#}
with

edges as (

    select * from {{ ref('int_identity_edges') }}

),

components as (

    select * from {{ ref('int_profile_ids') }}

),

messages as (

    select message_id, message_type, event_name, list_name, file_path, line_number
    from {{ ref('int_messages') }}

),

type_counts as (

    select
        components.profile_id,
        nodes.identifier_type,
        count(*) as identifiers,
        max(nodes.max_per_profile) as max_per_profile

    from components
    join {{ ref('int_identity_nodes') }} as nodes on nodes.node_id = components.node_id
    group by 1, 2

),

placed as (

    select
        edges.*,
        from_component.profile_id as from_profile_id,
        to_component.profile_id as to_profile_id

    from edges
    join components as from_component
        on from_component.identifier_type = edges.from_type
        and from_component.identifier_value = edges.from_value
    join components as to_component
        on to_component.identifier_type = edges.to_type
        and to_component.identifier_value = edges.to_value

),

-- The two profiles of each refused link, one row each (an equi-join below, not an `in` that
-- compares every pair with every profile).
refused_pairs as (

    select distinct from_profile_id, to_profile_id
    from placed
    where from_profile_id <> to_profile_id

),

refused_pair_profiles as (

    select from_profile_id, to_profile_id, from_profile_id as profile_id from refused_pairs
    union all
    select from_profile_id, to_profile_id, to_profile_id as profile_id from refused_pairs

),

-- A refused link joins two profiles whose identifiers together break a limit; name the limits.
refusals as (

    select
        placed.message_id,
        placed.from_type,
        placed.from_value,
        placed.to_type,
        placed.to_value,
        min(combined.identifier_type || ' limit ' || cast(combined.max_per_profile as {{ dbt.type_string() }}))
            as refusal_reason

    from placed
    join (
        select
            pair.from_profile_id,
            pair.to_profile_id,
            counts.identifier_type,
            sum(counts.identifiers) as identifiers,
            max(counts.max_per_profile) as max_per_profile
        from refused_pair_profiles as pair
        join type_counts as counts on counts.profile_id = pair.profile_id
        group by 1, 2, 3
    ) as combined
        on combined.from_profile_id = placed.from_profile_id
        and combined.to_profile_id = placed.to_profile_id
        and combined.identifiers > combined.max_per_profile
    group by 1, 2, 3, 4, 5

)

select
    placed.message_id,
    messages.message_type,
    messages.event_name,
    placed.source,
    placed.event_at,
    placed.from_type,
    placed.from_value,
    placed.to_type,
    placed.to_value,
    case when placed.from_profile_id = placed.to_profile_id then 'linked' else 'refused' end as link_status,
    refusals.refusal_reason,
    placed.from_profile_id,
    placed.to_profile_id,
    messages.list_name,
    messages.file_path,
    messages.line_number

from placed
join messages on messages.message_id = placed.message_id
left join refusals
    on refusals.message_id = placed.message_id
    and refusals.from_type = placed.from_type and refusals.from_value = placed.from_value
    and refusals.to_type = placed.to_type and refusals.to_value = placed.to_value
