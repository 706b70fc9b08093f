{#- Fields every Segment-spec message has: column → JSON path of a scalar (read as text). -#}
{% macro segment_message_strings() -%}
    {{ return({
        'message_type': '$.type',
        'anonymous_id': '$.anonymousId',
        'user_id': '$.userId',
        'sent_timestamp': '$.timestamp',
        'original_timestamp': '$.originalTimestamp',
        'sent_at': '$.sentAt',
        'received_at': '$.receivedAt',
    }) }}
{%- endmacro %}

{#- ... and of the JSON objects it carries (kept as JSON). -#}
{% macro segment_message_objects() -%}
    {{ return({'context_traits': '$.context.traits', 'context': '$.context'}) }}
{%- endmacro %}

{#- The columns of a staged message from the fields extracted into `fields` (strings) and
    `objects` (JSON values) by segment_staging; `strings` and `json` are the model's own fields. -#}
{% macro segment_message_columns(string_paths, object_paths) -%}
    {%- set field = {} -%}
    {%- for name in string_paths %}{% do field.update({name: list_item('fields', loop.index)}) %}{% endfor -%}
    {%- set object = {} -%}
    {%- for name in object_paths %}{% do object.update({name: list_item('objects', loop.index)}) %}{% endfor -%}
        message_id,
        message_id_is_derived,
        lower(trim({{ field['message_type'] }})) as message_type,
        {{ field['anonymous_id'] }} as anonymous_id,
        {{ field['user_id'] }} as user_id,
        {{ object['context_traits'] }} as context_traits,
        {{ object['context'] }} as context,
        {{ parse_timestamp(field['sent_timestamp']) }} as sent_timestamp_at,
        {{ parse_timestamp(field['original_timestamp']) }} as original_timestamp_at,
        {{ parse_timestamp(field['sent_at']) }} as sent_at,
        {{ parse_timestamp(field['received_at']) }} as received_at,
        payload,
        load_id,
        file_path,
        line_number,
        loaded_at
    {%- for name in string_paths if name not in segment_message_strings() %},
        {{ field[name] }} as {{ name }}
    {%- endfor %}
    {%- for name in object_paths if name not in segment_message_objects() %},
        {{ object[name] }} as {{ name }}
    {%- endfor %}
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
    `strings` and `objects` are the type's own fields (column → JSON path), read as text and as JSON.
    Each payload is parsed once for all its fields (json_get_strings).
    Incremental: a build reads only the raw rows of messages that arrived since the last one. -#}
{% macro segment_staging(table, strings={}, objects={}) -%}
{%- set string_paths = dict(segment_message_strings(), **strings) -%}
{%- set object_paths = dict(segment_message_objects(), **objects) -%}
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

    select
        *,
        {{ json_get_strings('payload', string_paths.values() | list) }} as fields,
        {{ json_get_values('payload', object_paths.values() | list) }} as objects

    from source

),

renamed as (

    select
        {{ segment_message_columns(string_paths, object_paths) }}

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
