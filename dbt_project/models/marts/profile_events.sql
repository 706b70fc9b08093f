with

messages as (

    select * from {{ ref('int_messages') }}

),

-- All linkable identifiers of a message are in one component, so any of them names its profile.
message_profiles as (

    select
        identifiers.message_id,
        min(components.profile_id) as profile_id

    from {{ ref('int_identifiers') }} as identifiers
    join {{ ref('int_identity_components') }} as components
        on components.identifier_type = identifiers.identifier_type
        and components.identifier_value = identifiers.identifier_value
    where identifiers.is_linkable
    group by 1

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
