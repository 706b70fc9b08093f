{#- Identifiers seen together in one message or contact row belong to one person. Each message
    links its strongest identifier (the anchor, by priority) to each of its others: enough to
    connect them all, with the message as evidence. Junk identifiers (int_identity_junk) link no one. -#}
with

junk as (

    select distinct identifier_type, identifier_value from {{ ref('int_identity_junk') }}

),

linkable as (

    select
        identifiers.*,
        {{ identifier_priority('identifiers.identifier_type') }} as priority,
        row_number() over (
            partition by identifiers.message_id
            order by {{ identifier_priority('identifiers.identifier_type') }}, identifiers.identifier_type,
                identifiers.identifier_value
        ) as anchor_rank

    from {{ ref('int_identifiers') }} as identifiers
    -- few identifiers are junk: an anti-join with a small table, not a join with every node
    left join junk
        on junk.identifier_type = identifiers.identifier_type
        and junk.identifier_value = identifiers.identifier_value
    where identifiers.is_linkable and junk.identifier_type is null

),

anchors as (

    select message_id, identifier_type, identifier_value, priority
    from linkable
    where anchor_rank = 1

)

select
    linkable.message_id,
    linkable.source,
    linkable.event_at,
    anchors.identifier_type as from_type,
    anchors.identifier_value as from_value,
    linkable.identifier_type as to_type,
    linkable.identifier_value as to_value,
    -- the priority of the weaker end: merge protection gives up the weakest links first
    case when linkable.priority > anchors.priority then linkable.priority else anchors.priority end as weak_priority

from linkable
join anchors on anchors.message_id = linkable.message_id
where linkable.anchor_rank > 1
