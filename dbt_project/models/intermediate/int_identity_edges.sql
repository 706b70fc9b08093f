{#- Identifiers seen together in one message or contact row belong to one person. Each message
    links its strongest identifier (the anchor, by priority) to each of its others: enough to
    connect them all, with the message as evidence. Junk identifiers (int_identity_junk) link no one. -#}
with

linkable as (

    select
        identifiers.*,
        nodes.priority,
        row_number() over (
            partition by identifiers.message_id
            order by nodes.priority, identifiers.identifier_type, identifiers.identifier_value
        ) as anchor_rank

    from {{ ref('int_identifiers') }} as identifiers
    join {{ ref('int_identity_nodes') }} as nodes
        on nodes.identifier_type = identifiers.identifier_type
        and nodes.identifier_value = identifiers.identifier_value
    where identifiers.is_linkable and not nodes.is_junk

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
