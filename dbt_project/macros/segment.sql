{#- The fields every Segment-spec message has, read from its raw JSON payload ([kind, path], for
    select_json_fields); the texts of times are parsed in segment_message_columns. -#}
{% macro segment_message_fields() -%}
    {{ return({
        'type_text': ['string', '$.type'],
        'anonymous_id': ['string', '$.anonymousId'],
        'user_id': ['string', '$.userId'],
        'context_traits': ['json', '$.context.traits'],
        'context': ['json', '$.context'],
        'timestamp_text': ['string', '$.timestamp'],
        'original_timestamp_text': ['string', '$.originalTimestamp'],
        'sent_at_text': ['string', '$.sentAt'],
        'received_at_text': ['string', '$.receivedAt'],
    }) }}
{%- endmacro %}

{#- Columns every Segment-spec message has, from the fields of segment_message_fields. -#}
{% macro segment_message_columns() -%}
        message_id,
        message_id_is_derived,
        lower(trim(type_text)) as message_type,
        anonymous_id,
        user_id,
        context_traits,
        context,
        {{ parse_timestamp('timestamp_text') }} as sent_timestamp_at,
        {{ parse_timestamp('original_timestamp_text') }} as original_timestamp_at,
        {{ parse_timestamp('sent_at_text') }} as sent_at,
        {{ parse_timestamp('received_at_text') }} as received_at,
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
    `extra_fields`: the message type's own fields, {column: [kind, path]} as select_json_fields reads.
    Incremental: a build reads only the raw rows of messages that arrived since the last one. -#}
{% macro segment_staging(table, extra_fields) -%}
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

extracted as (

    {{ select_json_fields('source', 'payload', dict(segment_message_fields(), **extra_fields)) }}

),

renamed as (

    select
        {{ segment_message_columns() }},
        {%- for name in extra_fields %}
        {{ name }}{{ "," if not loop.last }}
        {%- endfor %}

    from extracted

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
