{#- One row per linkable identifier: the node of the identity graph. Not numbered here: a number
    would follow first sightings, which new identifiers shift, so int_identity_components numbers
    only the nodes a build works on. -#}
with

linkable as (

    select * from {{ ref('int_identifiers') }}
    where is_linkable

),

junk as (

    select distinct identifier_type, identifier_value from {{ ref('int_identity_junk') }}

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
    summarized.*,
    {{ identifier_priority('summarized.identifier_type') }} as priority,
    {{ identifier_limit('summarized.identifier_type') }} as max_per_profile,
    junk.identifier_type is not null as is_junk

from summarized
left join junk
    on junk.identifier_type = summarized.identifier_type
    and junk.identifier_value = summarized.identifier_value
