{{ config(
    materialized='incremental',
    meta={'build_watermark': 'built_at'},
    incremental_strategy='replace_keys',
    unique_key='message_id',
    key_only_when_null='identifier_type',
    on_schema_change='sync_all_columns',
    log_replaced_columns=replaced_identifier_columns(),
) }}

{#- Every identifier every message carries: one row per message × identifier, normalised, with
    the reason it is kept from linking anyone (junk, malformed), if any.

    Incremental: a build re-reads the messages whose standing copy arrived since the last build,
    the messages that are gone (a contact list's newer export without a record), and the aliases
    whose previousId may change type (it is a user id that came or went), and replaces their rows
    (`replace_keys`: each message re-read is also named by a key-only row). Under other identity
    rules it recomputes every row. `built_at` tells
    profile_events which messages' rows were replaced since it last read them; the rows replaced are
    kept in `int_identifiers__replaced` until junk detection and the graph's nodes have summarised
    the identifiers that lost them (macros/incremental/identifier_rows.sql). -#}
{%- set rules_fingerprint = identifier_rules_fingerprint() -%}
{%- set incremental = is_incremental() -%}
{%- set rebuild = false -%}
{%- set arrived_after = none -%}
{#- Read before the build: whether the table was built under these rules, and the arrival bound
    (macros/incremental/state.sql). A unit test's `this` is a fixture (a string): it reads neither. -#}
{%- if incremental and this is not string -%}
    {%- set rebuild = built_under_other_rules(this, rules_fingerprint) -%}
    {%- set arrived_after = none if rebuild else arrival_bound(this, ref('int_messages')) -%}
{%- endif %}

{#- One branch per identifier type and source of the identity rules, plus an alias's previousId
    (typed below as a user id or an anonymous id). -#}
{%- set branches = [('previous_id', 'previousId')] -%}
{%- for type, rule in identifier_types().items() -%}
    {%- for source in rule['sources'] -%}{%- do branches.append((type, source)) -%}{%- endfor -%}
{%- endfor %}
{#- Each branch (type, field, number) with its rivals: the branches that can give its identifier
    again in the same message (the other sources of its type, and an alias's previousId with the
    user and anonymous ids). -#}
{%- set numbered_branches = [] -%}
{%- for observed_type, field in branches -%}
    {%- set branch = loop.index -%}
    {%- set rivals = [] -%}
    {%- for other_type, other_field in branches -%}
        {%- if loop.index != branch and (other_type == observed_type
                or (observed_type == 'previous_id' and other_type in ['user_id', 'anonymous_id'])
                or (other_type == 'previous_id' and observed_type in ['user_id', 'anonymous_id'])) -%}
            {%- do rivals.append('value_' ~ loop.index ~ ' is not null') -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do numbered_branches.append((observed_type, field, branch, rivals)) -%}
{%- endfor %}
{%- set user_id_branches = [] -%}
{%- for branch in numbered_branches if branch[0] == 'user_id' -%}{%- do user_id_branches.append(branch) -%}{%- endfor %}
with
{%- if incremental and not rebuild %}

-- The messages whose standing copy arrived since the last build. (This and the CTEs below read
-- `this` each: one CTE with three readers would be kept in memory, every row.)
arrived as (

    {{ messages_arrived_since(this, arrived_after) }}

),

-- The messages that are gone: a contact list's newer export without a record.
gone as (

    select distinct message_id from ({{ messages_gone_from(this) }}) as gone_messages

),

changed as (

    select message_id from arrived
    union
    select message_id from gone

),

-- The user ids the changed messages carried or carry now: an alias whose previousId is one of
-- them may change type.
changed_user_ids as (

    select {{ normalize_id('raw_value') }} as user_id
    from {{ this }}
    where identifier_type = 'user_id' and message_id in (select message_id from changed)
    {%- for observed_type, field, branch, rivals in user_id_branches %}
    union
    select {{ normalize_id(identifier_source_value(field)) }} from arrived
    {%- endfor %}

),

retyped_aliases as (

    select *
    from {{ ref('int_messages') }}
    where previous_id is not null
        and {{ normalize_id('previous_id') }} in (select user_id from changed_user_ids)
        and message_id not in (select message_id from arrived)

),

messages as (

    select * from arrived
    union all
    select * from retyped_aliases

),
{%- else %}

messages as (

    select * from {{ ref('int_messages') }}

),
{%- endif %}

-- Each message's value of every branch, read once.
branch_values as (

    select
        message_id,
        message_type,
        source,
        event_at,
        loaded_at,
        {%- for observed_type, field in branches %}
        {{ identifier_source_value(field) if field != 'previousId' else 'previous_id' }} as value_{{ loop.index }}
        {{- "," if not loop.last }}
        {%- endfor %}

    from messages

),

-- Kept as a narrow table that every branch below reads, so the messages' JSON is parsed once.
extracted as {{ materialized_cte() }} (

    select
        *,
        {%- for observed_type, field in branches %}
        case when value_{{ loop.index }} is not null then 1 else 0 end {{- " +" if not loop.last }}
        {%- endfor %} as values_in_message

    from branch_values

),

{#- The user ids the previousIds of these messages are checked against: every standing message's
    (an incremental build looks up only its aliases' previousIds). -#}
known_user_ids as (

    {%- for observed_type, field, branch, rivals in user_id_branches %}
    {%- if incremental and not rebuild %}
    select distinct {{ normalize_id(identifier_source_value(field)) }} as user_id
    from {{ ref('int_messages') }}
    where {{ normalize_id(identifier_source_value(field)) }} in (
        select {{ normalize_id('value_1') }} from extracted where value_1 is not null
    )
    {%- else %}
    select distinct {{ normalize_id('value_' ~ branch) }} as user_id from extracted where value_{{ branch }} is not null
    {%- endif %}
    {% if not loop.last %}union{% endif %}
    {%- else %}
    select cast(null as {{ dbt.type_string() }}) as user_id where 1 = 0
    {%- endfor %}

),

{#- Each branch's values, in two groups: the rows whose message has no value in a rival branch, and
    the few that a rival may give again. Only the second group is grouped below; the first streams
    through (each is read once, so neither is kept in memory). A group meets every message with
    every branch, so it reads `extracted` once, not once per branch: Spark copies a CTE into each
    place that reads it, and with a select per branch, int_identifiers took a minute of an
    incremental build of the sample on Spark. -#}

branches as (

    {%- for observed_type, field, branch, rivals in numbered_branches %}
    select {{ branch }} as branch, '{{ field }}' as observed_in, '{{ observed_type }}' as identifier_type
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),
{%- for group in ['single', 'repeatable'] %}

observed_{{ group }} as (

    select
        unpivoted.message_id,
        unpivoted.message_type,
        unpivoted.source,
        unpivoted.event_at,
        unpivoted.loaded_at,
        unpivoted.values_in_message,
        unpivoted.observed_in,
        unpivoted.raw_value,
        -- An alias's previousId is the person's earlier id: a user id when it is used as one
        -- anywhere, else an anonymous id.
        case
            when unpivoted.identifier_type <> 'previous_id' then unpivoted.identifier_type
            when known_user_ids.user_id is not null then 'user_id'
            else 'anonymous_id'
        end as identifier_type

    from (
        select
            extracted.message_id,
            extracted.message_type,
            extracted.source,
            extracted.event_at,
            extracted.loaded_at,
            extracted.values_in_message,
            branches.observed_in,
            branches.identifier_type,
            case branches.branch
                {%- for observed_type, field, branch, rivals in numbered_branches %}
                when {{ branch }} then extracted.value_{{ branch }}
                {%- endfor %}
            end as raw_value,
            case branches.branch
                {%- for observed_type, field, branch, rivals in numbered_branches %}
                when {{ branch }} then {{ '(' ~ rivals | join(' or ') ~ ')' if rivals else 'false' }}
                {%- endfor %}
            end as has_rival
        from extracted
        cross join branches
    ) as unpivoted
    -- only previousIds are looked up: the other values have no key to hash and compare
    left join known_user_ids
        on known_user_ids.user_id
            = case when unpivoted.identifier_type = 'previous_id' then {{ normalize_id('unpivoted.raw_value') }} end
    where unpivoted.raw_value is not null and {{ 'not ' if group == 'single' }}unpivoted.has_rival

),

normalized_{{ group }} as (

    select
        *,
        {{ normalize_identifier('identifier_type', 'raw_value') }} as identifier_value

    from observed_{{ group }}

),

checked_{{ group }} as (

    select
        *,
        {{ identifier_block_reason('identifier_type', 'raw_value', 'identifier_value') }} as block_reason

    from normalized_{{ group }}

),
{%- endfor %}

-- The same identifier twice in one message (traits.email and context.traits.email): one row.
-- Only messages where another branch of the type has a value can have it twice: the rest skip the
-- grouping (a hash aggregate over every identifier, the costliest step at millions of messages).
per_message as (

    select
        message_id,
        identifier_type,
        coalesce(identifier_value, {{ normalize_id('raw_value') }}) as identifier_value,
        message_type,
        source,
        event_at,
        loaded_at,
        values_in_message,
        raw_value,
        observed_in,
        block_reason

    from checked_single

    union all

    select
        message_id,
        identifier_type,
        coalesce(identifier_value, {{ normalize_id('raw_value') }}) as identifier_value,
        min(message_type) as message_type,
        min(source) as source,
        min(event_at) as event_at,
        min(loaded_at) as loaded_at,
        min(values_in_message) as values_in_message,
        min(raw_value) as raw_value,
        min(observed_in) as observed_in,
        min(block_reason) as block_reason

    from checked_repeatable
    group by 1, 2, 3

)

select
    message_id,
    identifier_type,
    identifier_value,
    raw_value,
    observed_in,
    message_type,
    source,
    event_at,
    loaded_at,
    values_in_message,
    block_reason,
    block_reason is null as is_linkable,
    '{{ rules_fingerprint }}' as rules_fingerprint,
    {{ build_timestamp() }} as built_at

from per_message
{%- if incremental %}

-- Each changed message by its id alone: its earlier rows are replaced by this build's, or by none.
-- (A rebuild: one row with a null id, which names every message.)
union all

select
    {{ 'cast(null as ' ~ dbt.type_string() ~ ')' if rebuild else 'message_id' }} as message_id,
    cast(null as {{ dbt.type_string() }}) as identifier_type,
    cast(null as {{ dbt.type_string() }}) as identifier_value,
    cast(null as {{ dbt.type_string() }}) as raw_value,
    cast(null as {{ dbt.type_string() }}) as observed_in,
    cast(null as {{ dbt.type_string() }}) as message_type,
    cast(null as {{ dbt.type_string() }}) as source,
    cast(null as {{ dbt.type_timestamp() }}) as event_at,
    cast(null as {{ dbt.type_timestamp() }}) as loaded_at,
    cast(null as {{ dbt.type_int() }}) as values_in_message,
    cast(null as {{ dbt.type_string() }}) as block_reason,
    cast(null as {{ dbt.type_boolean() }}) as is_linkable,
    cast(null as {{ dbt.type_string() }}) as rules_fingerprint,
    cast(null as {{ dbt.type_timestamp() }}) as built_at

{%- if not rebuild %}

from changed
{%- endif %}
{%- endif %}
