{#- Identifiers that link more people than a real person's identifier would (int_identity_conflicts)
    and that link no one: those of a type whose `on_conflict` is `junk` (the default), and those
    over a threshold through another type (a placeholder e-mail typed on strangers' devices). One row
    per identifier and exceeded neighbour type, with the evidence. -#}
{%- set thresholds = junk_thresholds() -%}
{%- set evidence_types = (thresholds.direct | map(attribute='neighbour') | list)
                         + (thresholds.through | map(attribute='hop') | list) -%}
with

junk as (

    select * from {{ ref('int_identity_conflicts') }}
    where on_conflict = 'junk'

),

linkable as {{ unmaterialized_cte() }} (

    select message_id, identifier_type, identifier_value
    from {{ ref('int_identifiers') }}
    where is_linkable and values_in_message > 1

),

neighbours as (

    select * from linkable
    where {{ "identifier_type in ('" ~ evidence_types | unique | join("', '") ~ "')" if evidence_types else "1 = 0" }}

),

-- The messages behind each junk identifier's neighbours of the type (for a threshold through
-- another type: its messages with identifiers of the hop type), read for the few junk ones only.
evidence as (

    select
        junk.identifier_type,
        junk.identifier_value,
        junk.neighbour_type,
        count(distinct subject.message_id) as evidence_messages,
        min(subject.message_id) as example_message_id

    from junk
    join linkable as subject
        on subject.identifier_type = junk.identifier_type
        and subject.identifier_value = junk.identifier_value
    join neighbours as neighbour
        on neighbour.message_id = subject.message_id
        and (neighbour.identifier_type = junk.neighbour_type
             or junk.neighbour_type like neighbour.identifier_type || '.%')
        and not (neighbour.identifier_type = subject.identifier_type
                 and neighbour.identifier_value = subject.identifier_value)
    group by 1, 2, 3

)

select
    junk.identifier_type,
    junk.identifier_value,
    case
        when junk.neighbour_type like '%.%'
            -- anonymous_id.user_id: `anonymous_ids_seen_with_too_many_user_ids`
            then replace(junk.neighbour_type, '.', 's_seen_with_too_many_') || 's'
        else 'seen_with_too_many_' || junk.neighbour_type || 's'
    end as reason,
    junk.neighbour_type,
    junk.distinct_neighbours,
    junk.max_distinct_neighbours,
    evidence.evidence_messages,
    junk.first_neighbour,
    junk.last_neighbour,
    evidence.example_message_id

from junk
join evidence
    on evidence.identifier_type = junk.identifier_type
    and evidence.identifier_value = junk.identifier_value
    and evidence.neighbour_type = junk.neighbour_type
