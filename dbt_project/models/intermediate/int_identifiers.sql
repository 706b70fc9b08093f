{#- Every identifier every message carries: one row per message × identifier, normalised, with
    the reason it is kept from linking anyone (junk, malformed), if any. -#}
with

messages as (

    select * from {{ ref('int_messages') }}

),

{#- One branch per identifier type and source of the identity rules, plus an alias's previousId
    (typed below as a user id or an anonymous id). -#}
{%- set branches = [('previous_id', 'previousId')] -%}
{%- for type, rule in identifier_types().items() -%}
    {%- for source in rule['sources'] -%}{%- do branches.append((type, source)) -%}{%- endfor -%}
{%- endfor %}

-- Each message's value of every branch, read once.
extracted as (

    select
        message_id,
        source,
        event_at,
        {%- for observed_type, field in branches %}
        {{ identifier_source_value(field) if field != 'previousId' else 'previous_id' }} as value_{{ loop.index }}
        {{- "," if not loop.last }}
        {%- endfor %}

    from messages

),

observed as (

    {%- for observed_type, field in branches %}
    {%- set branch = loop.index %}
    {#- Branches that can give this one's identifier again in the same message: the other sources of
        its type, and an alias's previousId with the user and anonymous ids. -#}
    {%- set rivals = [] -%}
    {%- for other_type, other_field in branches -%}
        {%- if loop.index != branch and (other_type == observed_type
                or (observed_type == 'previous_id' and other_type in ['user_id', 'anonymous_id'])
                or (other_type == 'previous_id' and observed_type in ['user_id', 'anonymous_id'])) -%}
            {%- do rivals.append('value_' ~ loop.index ~ ' is not null') -%}
        {%- endif -%}
    {%- endfor %}
    select
        message_id,
        source,
        event_at,
        '{{ observed_type }}' as observed_type,
        '{{ field }}' as observed_in,
        value_{{ branch }} as raw_value,
        {{ '(' ~ rivals | join(' or ') ~ ')' if rivals else 'false' }} as may_repeat
    from extracted
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
-- Only messages where another branch of the type has a value can have it twice: the rest skip the
-- grouping (a hash aggregate over every identifier, the costliest step at millions of messages).
per_message as (

    select
        message_id,
        identifier_type,
        coalesce(identifier_value, trim(raw_value)) as identifier_value,
        source,
        event_at,
        raw_value,
        observed_in,
        block_reason

    from checked
    where not may_repeat

    union all

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
    where may_repeat
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
