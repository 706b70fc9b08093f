{#- Identifiers seen together in one message or contact row belong to one person. Each message
    links its strongest identifier (the anchor, by `identifier_priority`) to each of its others:
    enough to connect them all, with the message as evidence. -#}
with

linkable as (

    select
        *,
        row_number() over (
            partition by message_id
            order by {{ identifier_priority('identifier_type') }}, identifier_type, identifier_value
        ) as anchor_rank

    from {{ ref('int_identifiers') }}
    where is_linkable

),

anchors as (

    select message_id, identifier_type, identifier_value
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
    linkable.identifier_value as to_value

from linkable
join anchors on anchors.message_id = linkable.message_id
where linkable.anchor_rank > 1
