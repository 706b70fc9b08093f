{{ config(
    materialized='incremental',
    meta={'build_watermark': 'updated_at'},
    incremental_strategy='replace_keys',
    unique_key='message_id',
    key_only_when_null='resolution_status',
    on_schema_change='append_new_columns',
) }}

{#- Every accepted message, placed in the profile of its anchor identifier.

    Incremental: a build re-places only the messages whose standing copy arrived since the last
    build (by `loaded_at`, per message type), whose identifiers int_identifiers rewrote since
    (`built_at`), that carry an identifier whose profile or junk status changed since
    (int_profile_ids.changed_at), and the messages that are gone; it replaces their rows
    (`replace_keys`). Every other message keeps its row: nothing it depends on changed. -#}
{%- set incremental = is_incremental() -%}
{%- set arrived_after = arrival_bound(this, ref('int_messages')) if incremental and this is not string -%}
{%- set identifiers = ref('int_identifiers') -%}
with
{%- if incremental %}

-- When the last build ran. (Each CTE reads `this` itself: a CTE with three readers would be kept
-- in memory.)
last_build as (

    select max(updated_at) as updated_at
    from {{ this }}

),

changed as (

    -- arrived: a new standing copy
    {{ messages_arrived_since(this, arrived_after, 'messages.message_id') }}

    union

    -- re-identified (an alias's previousId changed type, other rules), or re-profiled (an
    -- identifier of it moved to another profile, became junk or stopped being it)
    {{ messages_reidentified_or_reprofiled_since('last_build') }}

    union

    -- gone
    {{ messages_gone_from(this) }}

),

messages as (

    select * from {{ ref('int_messages') }}
    where message_id in (select message_id from changed)

),

-- Filtered by `messages`, not `changed`: DuckDB cannot estimate how few rows `changed` holds and
-- would build its hash table over every identifier instead (15 M rows at 1 M people).
changed_identifiers as (

    select * from {{ ref('int_identifiers') }}
    where message_id in (select message_id from messages)

),
{%- set identifiers = 'changed_identifiers' %}
{%- else %}

messages as (

    select * from {{ ref('int_messages') }}

),
{%- endif %}

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

    from {{ identifiers }} as identifiers
    -- few identifiers are junk: a small table to look them up in, not a join with every node
    left join junk
        on junk.identifier_type = identifiers.identifier_type
        and junk.identifier_value = identifiers.identifier_value
    where identifiers.is_linkable and identifiers.values_in_message > 1

),

anchors as (

    select message_id, identifier_type, identifier_value
    from {{ identifiers }}
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
    messages.event_at_status,
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
    messages.line_number,
    messages.loaded_at,
    {{ build_timestamp() }} as updated_at

from messages
left join message_profiles on message_profiles.message_id = messages.message_id
{%- if incremental %}

-- The messages that are gone, by their id alone: replace_keys deletes their rows.
union all

select
    {{ key_only_columns(['message_id', 'profile_id', 'resolution_status', 'source', 'message_type', 'event_name',
                        'event_at', 'event_at_status', 'sent_timestamp_at', 'original_timestamp_at', 'sent_at', 'received_at',
                        'anonymous_id', 'user_id', 'properties', 'traits', 'context', 'list_name', 'file_path',
                        'line_number', 'loaded_at', 'updated_at'], 'changed.message_id') }}

from changed
left join messages on messages.message_id = changed.message_id
where messages.message_id is null
{%- endif %}
