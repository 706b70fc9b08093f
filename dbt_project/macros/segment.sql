{#- Columns every Segment-spec message has, extracted from its raw JSON payload. -#}
{% macro segment_message_columns() -%}
        message_id,
        message_id_is_derived,
        lower(trim({{ json_get_string('payload', '$.type') }})) as message_type,
        {{ json_get_string('payload', '$.anonymousId') }} as anonymous_id,
        {{ json_get_string('payload', '$.userId') }} as user_id,
        {{ json_get('payload', '$.context.traits') }} as context_traits,
        {{ json_get('payload', '$.context') }} as context,
        {{ parse_timestamp(json_get_string('payload', '$.timestamp')) }} as sent_timestamp_at,
        {{ parse_timestamp(json_get_string('payload', '$.originalTimestamp')) }} as original_timestamp_at,
        {{ parse_timestamp(json_get_string('payload', '$.sentAt')) }} as sent_at,
        {{ parse_timestamp(json_get_string('payload', '$.receivedAt')) }} as received_at,
        load_id,
        file_path,
        line_number,
        loaded_at
{%- endmacro %}

{#- The time the message happened: Segment's clock-skew correction when the three client/server
    times are known, else the first time that is. -#}
{% macro segment_event_at() -%}
        case
            when original_timestamp_at is not null and sent_at is not null and received_at is not null
                then {{ correct_clock_skew('original_timestamp_at', 'sent_at', 'received_at') }}
            else coalesce(sent_timestamp_at, original_timestamp_at, received_at, sent_at, loaded_at)
        end
{%- endmacro %}

{#- A staging model over one raw message table: extract, time, de-duplicate (first received wins).
    Incremental: a build reads only the raw rows of messages that arrived since the last one. -#}
{% macro segment_staging(table, extra_columns) -%}
with

source as (

    select * from {{ source('segment', table) }}
    {% if is_incremental() -%}
    {#- Only the messages that arrived since the last build, with every earlier copy of them, so the
        first received still wins whichever run brought it (delete+insert on message_id). -#}
    where message_id in (
        select message_id from {{ source('segment', table) }}
        -- an empty table (no such messages yet) reads everything
        where loaded_at > (select coalesce(max(loaded_at), cast('1900-01-01' as timestamp)) from {{ this }})
    )
    {%- endif %}

),

renamed as (

    select
        {{ segment_message_columns() }},
        {%- for name, expression in extra_columns.items() %}
        {{ expression }} as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}

    from source

),

timed as (

    select
        *,
        {{ segment_event_at() }} as event_at

    from renamed

),

deduplicated as (

    {{ deduplicate(
        'timed',
        partition_by='message_id',
        order_by='received_at nulls last, loaded_at, file_path, line_number'
    ) }}

)

select * from deduplicated
{%- endmacro %}
