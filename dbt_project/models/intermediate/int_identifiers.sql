{#- Every identifier every message carries: one row per message × identifier, normalised, with
    the reason it is kept from linking anyone (junk, malformed), if any. -#}
with

messages as (

    select * from {{ ref('int_messages') }}

),

observed as (

    {%- set candidates = [
        ('anonymous_id', 'anonymous_id', 'anonymousId'),
        ('user_id', 'user_id', 'userId'),
        ('previous_id', 'previous_id', 'previousId'),
        ('email', 'traits_email', 'traits.email'),
        ('email', 'context_traits_email', 'context.traits.email'),
        ('phone', 'traits_phone', 'traits.phone'),
        ('phone', 'context_traits_phone', 'context.traits.phone'),
    ] %}
    {%- for identifier_type, column, field in candidates %}
    select
        message_id,
        source,
        event_at,
        '{{ identifier_type }}' as observed_type,
        case when source = 'contacts' and '{{ field }}' = 'traits.{{ identifier_type }}'
            then '{{ identifier_type }} column' else '{{ field }}' end as observed_in,
        {{ column }} as raw_value
    from messages
    where {{ column }} is not null
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

known_user_ids as (

    select distinct {{ normalize_id('raw_value') }} as user_id
    from observed
    where observed_type = 'user_id'

),

-- An alias's previousId is the person's earlier id: a user id when it is used as one anywhere,
-- else an anonymous id.
typed as (

    select
        observed.*,
        case
            when observed_type <> 'previous_id' then observed_type
            when known_user_ids.user_id is not null then 'user_id'
            else 'anonymous_id'
        end as identifier_type

    from observed
    left join known_user_ids
        on observed.observed_type = 'previous_id'
        and known_user_ids.user_id = {{ normalize_id('observed.raw_value') }}

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
