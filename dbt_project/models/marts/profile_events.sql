with

messages as (

    select * from {{ ref('int_messages') }}

),

junk as (

    select distinct identifier_type, identifier_value from {{ ref('int_identity_junk') }}

),

-- A message belongs to the profile of its strongest identifier that is not junk (merge protection
-- or junk detection may have kept its identifiers apart); with only junk ones, the strongest of those.
-- Three messages in four carry a single identifier, which is their anchor: only the rest are ranked.
ranked_identifiers as (

    select
        identifiers.message_id,
        identifiers.identifier_type,
        identifiers.identifier_value,
        row_number() over (
            partition by identifiers.message_id
            order by
                junk.identifier_type is not null,
                {{ identifier_priority('identifiers.identifier_type') }},
                identifiers.identifier_type,
                identifiers.identifier_value
        ) as anchor_rank

    from {{ ref('int_identifiers') }} as identifiers
    -- few identifiers are junk: a small table to look them up in, not a join with every node
    left join junk
        on junk.identifier_type = identifiers.identifier_type
        and junk.identifier_value = identifiers.identifier_value
    where identifiers.is_linkable and identifiers.values_in_message > 1

),

anchors as (

    select message_id, identifier_type, identifier_value
    from {{ ref('int_identifiers') }}
    where is_linkable and values_in_message = 1

    union all

    select message_id, identifier_type, identifier_value
    from ranked_identifiers
    where anchor_rank = 1

),

message_profiles as (

    select anchors.message_id, components.profile_id
    from anchors
    join {{ ref('int_profile_ids') }} as components
        on components.identifier_type = anchors.identifier_type
        and components.identifier_value = anchors.identifier_value

)

select
    messages.message_id,
    message_profiles.profile_id,
    case when message_profiles.profile_id is null then 'no_linkable_identifier' else 'resolved' end
        as resolution_status,
    messages.source,
    messages.message_type,
    messages.event_name,
    messages.event_at,
    messages.sent_timestamp_at,
    messages.original_timestamp_at,
    messages.sent_at,
    messages.received_at,
    messages.anonymous_id,
    messages.user_id,
    messages.properties,
    messages.traits,
    messages.context,
    messages.list_name,
    messages.file_path,
    messages.line_number

from messages
left join message_profiles on message_profiles.message_id = messages.message_id
