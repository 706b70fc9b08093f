{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='merged_profile_id',
    full_refresh=false,
    on_schema_change='append_new_columns',
) }}

{#- Every merge of two profiles: the younger id, the id that survives, when, and the message whose
    link joined them (the newest-loaded link between the two). Appended build after build. -#}
with

ids as (

    select * from {{ ref('int_profile_ids') }}

),

merged as (

    select distinct
        previous_profile_id as merged_profile_id,
        profile_id as surviving_profile_id,
        assigned_at as merged_at

    from ids
    where previous_profile_id is not null
        and previous_profile_id <> profile_id
        and previous_profile_id not in (select profile_id from ids)
        {%- if is_incremental() %}
        -- placed since the last merge recorded (int_profile_ids leaves the rows of the identifiers
        -- it did not place as they were, with the previous id of an earlier placing)
        and assigned_at > (select coalesce(max(merged_at), cast('1900-01-01' as timestamp)) from {{ this }})
        {%- endif %}

),

bridges as (

    select
        merged.merged_profile_id,
        edges.message_id,
        edges.event_at,
        edges.from_type || ':' || edges.from_value as from_identifier,
        edges.to_type || ':' || edges.to_value as to_identifier,
        row_number() over (
            partition by merged.merged_profile_id
            order by messages.loaded_at desc, edges.event_at desc, edges.message_id desc
        ) as recency

    from merged
    cross join {{ ref('int_identity_edges') }} as edges
    join ids as from_ids
        on from_ids.identifier_type = edges.from_type and from_ids.identifier_value = edges.from_value
    join ids as to_ids
        on to_ids.identifier_type = edges.to_type and to_ids.identifier_value = edges.to_value
    join {{ ref('int_messages') }} as messages on messages.message_id = edges.message_id
    where from_ids.profile_id = merged.surviving_profile_id
        and to_ids.profile_id = merged.surviving_profile_id
        -- one end was in the merged profile before, the other was not
        and coalesce(from_ids.previous_profile_id = merged.merged_profile_id, false)
            <> coalesce(to_ids.previous_profile_id = merged.merged_profile_id, false)

)

select
    merged.merged_profile_id,
    merged.surviving_profile_id,
    merged.merged_at,
    bridges.message_id as caused_by_message_id,
    bridges.event_at as caused_by_event_at,
    bridges.from_identifier,
    bridges.to_identifier

from merged
left join bridges
    on bridges.merged_profile_id = merged.merged_profile_id
    and bridges.recency = 1
