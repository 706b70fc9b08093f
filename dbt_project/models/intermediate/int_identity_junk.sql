{#- Identifiers that link more people than a real person's identifier would, found from the data:
    for each linkable identifier, the distinct identifiers of each type seen in the same messages,
    compared with the `junk_detection` thresholds of the identity rules. One row per identifier and
    exceeded neighbour type. -#}
{%- set thresholds = identity_rules().get('junk_detection', {}) -%}

with

linkable as (

    select message_id, identifier_type, identifier_value
    from {{ ref('int_identifiers') }}
    -- an identifier alone in its message has no neighbours there
    where is_linkable and values_in_message > 1

),

thresholds as (

    {%- set rows = [] -%}
    {%- for subject_type, limits in thresholds.items() -%}
        {%- for neighbour_type, limit in limits.items() -%}
            {%- do rows.append("select '" ~ subject_type ~ "' as identifier_type, '" ~ neighbour_type
                               ~ "' as neighbour_type, " ~ limit ~ " as max_distinct_neighbours") -%}
        {%- endfor -%}
    {%- endfor %}
    {{ rows | join('\n    union all\n    ') if rows else
       "select cast(null as " ~ dbt.type_string() ~ ") as identifier_type, cast(null as "
       ~ dbt.type_string() ~ ") as neighbour_type, 0 as max_distinct_neighbours where 1 = 0" }}

),

-- The identifiers of the types some threshold counts as neighbours: by default user ids, e-mails
-- and phones, not the anonymous id every message carries, so this side of the pair join is small.
{%- set neighbour_types = [] -%}
{%- for limits in thresholds.values() -%}
    {%- for neighbour_type in limits if neighbour_type not in neighbour_types -%}
        {%- do neighbour_types.append(neighbour_type) -%}
    {%- endfor -%}
{%- endfor %}
neighbours as (

    select * from linkable
    where {{ "identifier_type in ('" ~ neighbour_types | join("', '") ~ "')" if neighbour_types else "1 = 0" }}

),

-- Each pair of identifiers seen in the same message, once (a person repeats the same pairs in
-- most of their messages: counting distinct pairs first keeps the counts below small), for the
-- pairs of types that have a threshold.
pairs as (

    select distinct
        subject.identifier_type,
        subject.identifier_value,
        neighbour.identifier_type as neighbour_type,
        neighbour.identifier_value as neighbour_value,
        thresholds.max_distinct_neighbours

    from linkable as subject
    join thresholds
        on thresholds.identifier_type = subject.identifier_type
    join neighbours as neighbour
        on neighbour.message_id = subject.message_id
        and neighbour.identifier_type = thresholds.neighbour_type
        and not (neighbour.identifier_type = subject.identifier_type
                 and neighbour.identifier_value = subject.identifier_value)

),

counted as (

    select
        identifier_type,
        identifier_value,
        neighbour_type,
        max_distinct_neighbours,
        count(*) as distinct_neighbours,
        min(neighbour_value) as first_neighbour,
        max(neighbour_value) as last_neighbour

    from pairs
    group by 1, 2, 3, 4

),

junk as (

    select * from counted
    where distinct_neighbours > max_distinct_neighbours

),

-- The messages behind each junk identifier's neighbours of the type (read for the few junk ones only).
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
        and neighbour.identifier_type = junk.neighbour_type
        and not (neighbour.identifier_type = subject.identifier_type
                 and neighbour.identifier_value = subject.identifier_value)
    group by 1, 2, 3

)

select
    junk.identifier_type,
    junk.identifier_value,
    'seen_with_too_many_' || junk.neighbour_type || 's' as reason,
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
