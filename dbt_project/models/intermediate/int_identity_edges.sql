{{ config(
    materialized='incremental',
    meta={'build_watermark': 'built_at'},
    incremental_strategy='replace_keys',
    unique_key='message_id',
    key_only_when_null='from_type',
    on_schema_change=sync_columns_where_possible(),
    post_hook=["{{ replace_table_hook(state_relation('junk'), 'select distinct identifier_type, identifier_value from '
                                     ~ ref('int_identity_junk')) }}",
               "{{ replace_table_hook(state_relation('kept'), kept_neighbours_sql()) }}"],
) }}

{#- Identifiers seen together in one message or contact row belong to one person. Each message
    links its strongest identifier (the anchor, by priority) to each of its others: enough to
    connect them all, with the message as evidence. Junk identifiers (int_identity_junk) link no one.
    An identifier whose type stitches on conflict (`on_conflict: latest | first`, int_identity_conflicts)
    links only through the neighbour it keeps: not in a message with another of that type, nor in
    one without it that carries a stronger identifier (see `unstitched`).

    Incremental: a message's edges depend on its own identifiers and on which identifiers are junk,
    so a build links again only the messages int_identifiers wrote since the last one, those that
    carry an identifier whose junk status changed since (the junk set the last build used is kept
    beside this table, `<this>__junk`), and deletes the edges of the messages loaded again (one may
    carry no identifier now) and of those that are gone. Under other identity rules, or without
    that state, every message is linked again. -#}
{%- set rules_fingerprint = local_md5(tojson(identity_rules(), sort_keys=true)) -%}
{%- set update = is_incremental() and this is not string
    and state_exists('junk')
    and not built_under_other_rules(this, rules_fingerprint) -%}
{#- the neighbours kept under on_conflict (the state `<this>__kept`) decide links as junk does -#}
{%- set update = update and state_exists('kept') -%}
{%- set last_build = "(select coalesce(max(built_at), cast('1900-01-01' as timestamp)) from " ~ this ~ ")" -%}
{%- set by_anchor_rank -%}
    over (
        partition by identifiers.message_id
        order by {{ identifier_priority('identifiers.identifier_type') }}, identifiers.identifier_type,
            identifiers.identifier_value
    )
{%- endset %}
-- depends_on: {{ ref('int_messages') }} (the messages loaded again or gone, read in an incremental build)
with

junk as (

    select distinct identifier_type, identifier_value from {{ ref('int_identity_junk') }}

),

-- Identifiers over a threshold that stitch to one neighbour of the type instead (on_conflict).
kept as (

    {{ kept_neighbours_sql() }}

),

{%- if update %}

junk_changed as (

    select coalesce(current.identifier_type, previous.identifier_type) as identifier_type,
        coalesce(current.identifier_value, previous.identifier_value) as identifier_value
    from junk as current
    full outer join {{ state_relation('junk') }} as previous
        on previous.identifier_type = current.identifier_type
        and previous.identifier_value = current.identifier_value
    where current.identifier_type is null or previous.identifier_type is null

    union

    -- a kept neighbour that changed (a newer user id on a device under `latest`) relinks its messages
    select coalesce(current.identifier_type, previous.identifier_type) as identifier_type,
        coalesce(current.identifier_value, previous.identifier_value) as identifier_value
    from kept as current
    full outer join {{ state_relation('kept') }} as previous
        on previous.identifier_type = current.identifier_type
        and previous.identifier_value = current.identifier_value
        and previous.neighbour_type = current.neighbour_type
        and previous.kept_neighbour = current.kept_neighbour
    where current.identifier_type is null or previous.identifier_type is null

),

-- int_identifiers writes a message's rows together: the rows written since the last build are
-- whole messages, and the other messages to link again are read whole beside them.
identifiers as (

    select * from {{ ref('int_identifiers') }}
    where built_at > {{ last_build }}

    union all

    select * from {{ ref('int_identifiers') }}
    where built_at <= {{ last_build }}
        and message_id in (
            select identifiers.message_id
            from {{ ref('int_identifiers') }} as identifiers
            join junk_changed
                on junk_changed.identifier_type = identifiers.identifier_type
                and junk_changed.identifier_value = identifiers.identifier_value
        )

),
{%- else %}

identifiers as {{ unmaterialized_cte() }} (

    select * from {{ ref('int_identifiers') }}

),
{%- endif %}

-- In each message, the identifiers that stitch on conflict and link nothing there: the message carries
-- another neighbour of a type they were over the threshold of (the earlier user's id), or lacks the
-- one they keep and carries a stronger identifier (an e-mail typed before signing in: linking it
-- would join the people who shared the device). Their messages with identifiers no stronger than
-- their own (an alias, another device id) link: the device's anonymous activity is its kept user's.
unstitched as (

    select
        identifiers.message_id,
        kept.identifier_type,
        kept.identifier_value

    from identifiers
    join kept
        on kept.identifier_type = identifiers.identifier_type
        and kept.identifier_value = identifiers.identifier_value
    join identifiers as other
        on other.message_id = identifiers.message_id
        and other.is_linkable
        and not (other.identifier_type = identifiers.identifier_type
                 and other.identifier_value = identifiers.identifier_value)
    group by 1, 2, 3
    having max(case when other.identifier_type = kept.neighbour_type
                    and other.identifier_value <> kept.kept_neighbour then 1 else 0 end) = 1
        or (max(case when other.identifier_type = kept.neighbour_type
                     and other.identifier_value = kept.kept_neighbour then 1 else 0 end) = 0
            and min({{ identifier_priority('other.identifier_type') }}) < {{ identifier_priority('kept.identifier_type') }})

),

-- Each linkable identifier with its message's anchor, from one window (no self-join).
ranked as (

    select
        identifiers.message_id,
        identifiers.source,
        identifiers.event_at,
        identifiers.identifier_type,
        identifiers.identifier_value,
        {{ identifier_priority('identifiers.identifier_type') }} as priority,
        row_number() {{ by_anchor_rank }} as anchor_rank,
        first_value(identifiers.identifier_type) {{ by_anchor_rank }} as anchor_type,
        first_value(identifiers.identifier_value) {{ by_anchor_rank }} as anchor_value,
        first_value({{ identifier_priority('identifiers.identifier_type') }}) {{ by_anchor_rank }} as anchor_priority

    from identifiers
    -- few identifiers are junk: an anti-join with a small table, not a join with every node
    left join junk
        on junk.identifier_type = identifiers.identifier_type
        and junk.identifier_value = identifiers.identifier_value
    left join unstitched
        on unstitched.message_id = identifiers.message_id
        and unstitched.identifier_type = identifiers.identifier_type
        and unstitched.identifier_value = identifiers.identifier_value
    where identifiers.is_linkable
        and junk.identifier_type is null
        and unstitched.message_id is null
        -- a message with a single identifier links nothing
        and identifiers.values_in_message > 1

)

select
    message_id,
    source,
    event_at,
    anchor_type as from_type,
    anchor_value as from_value,
    identifier_type as to_type,
    identifier_value as to_value,
    -- the priority of the weaker end: merge protection gives up the weakest links first
    case when priority > anchor_priority then priority else anchor_priority end as weak_priority,
    '{{ rules_fingerprint }}' as rules_fingerprint,
    {{ build_timestamp() }} as built_at

from ranked
where anchor_rank > 1
{%- if is_incremental() %}

union all

{% if update -%}
-- The edges of the messages linked again, and of those that are gone, are replaced.
select
    message_id,
    {%- for column in ['source', 'event_at', 'from_type', 'from_value', 'to_type', 'to_value', 'weak_priority',
                       'rules_fingerprint', 'built_at'] %}
    null as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
from (
    select message_id from identifiers
    union
    -- a message loaded again may carry no identifier now: int_identifiers then keeps no row of it
    select message_id from {{ ref('int_messages') }} where loaded_at > {{ last_build }}
    union
    {{ messages_gone_from(this) }}
) as replaced
{%- else -%}
-- Every row is written again: one key-only row with a null key names them all (replace_keys).
select
    cast(null as {{ dbt.type_string() }}) as message_id,
    cast(null as {{ dbt.type_string() }}) as source,
    cast(null as timestamp) as event_at,
    {%- for column in ['from_type', 'from_value', 'to_type', 'to_value'] %}
    cast(null as {{ dbt.type_string() }}) as {{ column }},
    {%- endfor %}
    cast(null as {{ dbt.type_int() }}) as weak_priority,
    cast(null as {{ dbt.type_string() }}) as rules_fingerprint,
    cast(null as timestamp) as built_at
{%- endif %}
{%- endif %}
