{#- Every identifier every message carries: one row per message × identifier, normalised, with
    the reason it is kept from linking anyone (junk, malformed), if any. -#}
with

messages as (

    select * from {{ ref('int_messages') }}

),

observed as (

    {#- One branch per identifier type and source of the identity rules, plus an alias's previousId. -#}
    {%- set branches = [('previous_id', 'previousId')] -%}
    {%- for type, rule in identifier_types().items() -%}
        {%- for source in rule['sources'] -%}{%- do branches.append((type, source)) -%}{%- endfor -%}
    {%- endfor %}
    {%- for observed_type, field in branches %}
    select
        message_id,
        source,
        event_at,
        '{{ observed_type }}' as observed_type,
        '{{ field }}' as observed_in,
        {{ identifier_source_value(field) if field != 'previousId' else 'previous_id' }} as raw_value
    from messages
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

present as (

    select * from observed where raw_value is not null

),

known_user_ids as (

    select distinct {{ normalize_id('raw_value') }} as user_id
    from present
    where observed_type = 'user_id'

),

-- An alias's previousId is the person's earlier id: a user id when it is used as one anywhere,
-- else an anonymous id.
typed as (

    select
        present.*,
        case
            when observed_type <> 'previous_id' then observed_type
            when known_user_ids.user_id is not null then 'user_id'
            else 'anonymous_id'
        end as identifier_type

    from present
    left join known_user_ids
        on present.observed_type = 'previous_id'
        and known_user_ids.user_id = {{ normalize_id('present.raw_value') }}

),

normalized as (

    select
        *,
        {{ normalize_identifier('identifier_type', 'raw_value') }} as identifier_value

    from typed

),

checked as (

    select
        *,
        {{ identifier_block_reason('identifier_type', 'raw_value', 'identifier_value') }} as block_reason

    from normalized

),

-- The same identifier twice in one message (traits.email and context.traits.email): one row.
per_message as (

    select
        message_id,
        identifier_type,
        coalesce(identifier_value, trim(raw_value)) as identifier_value,
        min(source) as source,
        min(event_at) as event_at,
        min(raw_value) as raw_value,
        min(observed_in) as observed_in,
        min(block_reason) as block_reason

    from checked
    group by 1, 2, 3

)

select
    message_id,
    identifier_type,
    identifier_value,
    raw_value,
    observed_in,
    source,
    event_at,
    block_reason,
    block_reason is null as is_linkable

from per_message
