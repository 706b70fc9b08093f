{#- Segment-spec messages (raw tracks, identifies, pages, ...): the staging model their types share. -#}

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

{#- The message's four times (text column of segment_message_fields → column of its parsed time). -#}
{% macro segment_message_times() -%}
    {{ return({
        'timestamp_text': 'sent_timestamp_at',
        'original_timestamp_text': 'original_timestamp_at',
        'sent_at_text': 'sent_at',
        'received_at_text': 'received_at',
    }) }}
{%- endmacro %}

{#- Columns every Segment-spec message has, from the fields of segment_message_fields and their
    times parsed (`<column>_parsed`, segment_staging): a time outside plausible_event_years is null
    here, so event_at falls back past it as past a time that does not parse; event_at_status says
    which happened. -#}
{% macro segment_message_columns() -%}
        message_id,
        message_id_is_derived,
        lower(trim(type_text)) as message_type,
        anonymous_id,
        user_id,
        context_traits,
        context,
        {%- for column in segment_message_times().values() %}
        {{ plausible_event_time(column ~ '_parsed') }} as {{ column }},
        {%- endfor %}
        {{ event_time_status(segment_time_pairs()) }} as event_at_status,
        load_id,
        file_path,
        line_number,
        loaded_at
{%- endmacro %}

{#- [text, parsed] of each time, for event_time_status. -#}
{% macro segment_time_pairs() -%}
    {%- set pairs = [] -%}
    {%- for text, column in segment_message_times().items() %}{% do pairs.append([text, column ~ '_parsed']) %}{% endfor -%}
    {{ return(pairs) }}
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

source as {{ unmaterialized_cte() }} (

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

-- The messages read more than once (a file landed twice, a replayed message): only their copies are
-- ranked below. A window over every row held all of their columns (3.3 GB at 1 M people).
copied as (

    select message_id from source group by message_id having count(*) > 1

),

flagged as (

    select source.*, copied.message_id is not null as has_copies
    from source
    left join copied on copied.message_id = source.message_id

),

extracted as (

    {{ select_json_fields('flagged', 'payload', dict(segment_message_fields(), **extra_fields)) }}

),

parsed as (

    select
        *,
        {%- for text, column in segment_message_times().items() %}
        {{ parse_timestamp(text) }} as {{ column }}_parsed{{ "," if not loop.last }}
        {%- endfor %}

    from extracted

),

renamed as (

    select
        {{ segment_message_columns() }},
        has_copies,
        {%- for name in extra_fields %}
        {{ name }}{{ "," if not loop.last }}
        {%- endfor %}

    from parsed

),

timed as {{ unmaterialized_cte() }} (

    select
        *,
        {{ segment_event_at() }} as event_at

    from renamed

),

deduplicated as (

    {{ deduplicate_flagged(
        'timed',
        'has_copies',
        partition_by='message_id',
        order_by='received_at nulls last, loaded_at, file_path, line_number'
    ) }}

)

select
    *,
    {#- every row this build writes (its tests read those: macros/incremental/verify_scope.sql) -#}
    {{ build_timestamp() }} as built_at
from deduplicated
{%- endmacro %}
