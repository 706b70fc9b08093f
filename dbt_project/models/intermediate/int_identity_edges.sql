{#- Identifiers seen together in one message or contact row belong to one person. Each message
    links its strongest identifier (the anchor, by priority) to each of its others: enough to
    connect them all, with the message as evidence. Junk identifiers (int_identity_junk) link no one. -#}
{%- set by_anchor_rank -%}
    over (
        partition by identifiers.message_id
        order by {{ identifier_priority('identifiers.identifier_type') }}, identifiers.identifier_type,
            identifiers.identifier_value
    )
{%- endset -%}
with

junk as (

    select distinct identifier_type, identifier_value from {{ ref('int_identity_junk') }}

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

    from {{ ref('int_identifiers') }} as identifiers
    -- few identifiers are junk: an anti-join with a small table, not a join with every node
    left join junk
        on junk.identifier_type = identifiers.identifier_type
        and junk.identifier_value = identifiers.identifier_value
    where identifiers.is_linkable
        and junk.identifier_type is null
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
    case when priority > anchor_priority then priority else anchor_priority end as weak_priority

from ranked
where anchor_rank > 1
