{#- One row per linkable identifier, numbered for the graph algorithm: the earliest seen gets the
    smallest number, so a component's smallest node is its oldest identifier. -#}
with

linkable as (

    select * from {{ ref('int_identifiers') }}
    where is_linkable

),

summarized as (

    select
        identifier_type,
        identifier_value,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) as message_count

    from linkable
    group by 1, 2

)

select
    row_number() over (
        order by first_seen_at, {{ identifier_priority('identifier_type') }}, identifier_type, identifier_value
    ) as node_id,
    *

from summarized
