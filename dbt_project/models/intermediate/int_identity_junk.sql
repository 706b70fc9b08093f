{#- Identifiers that link more people than a real person's identifier would, found from the data:
    for each linkable identifier, the distinct identifiers of each type seen in the same messages,
    compared with the `junk_detection` thresholds of the identity rules. One row per identifier and
    exceeded neighbour type. -#}
{%- set thresholds = identity_rules().get('junk_detection', {}) -%}

with

linkable as (

    select message_id, identifier_type, identifier_value, event_at
    from {{ ref('int_identifiers') }}
    where is_linkable

),

seen_together as (

    select
        subject.identifier_type,
        subject.identifier_value,
        neighbour.identifier_type as neighbour_type,
        neighbour.identifier_value as neighbour_value,
        subject.message_id

    from linkable as subject
    join linkable as neighbour
        on neighbour.message_id = subject.message_id
        and not (neighbour.identifier_type = subject.identifier_type
                 and neighbour.identifier_value = subject.identifier_value)

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

counted as (

    select
        identifier_type,
        identifier_value,
        neighbour_type,
        count(distinct neighbour_value) as distinct_neighbours,
        count(distinct message_id) as evidence_messages,
        min(neighbour_value) as first_neighbour,
        max(neighbour_value) as last_neighbour,
        min(message_id) as example_message_id

    from seen_together
    group by 1, 2, 3

)

select
    counted.identifier_type,
    counted.identifier_value,
    'seen_with_too_many_' || counted.neighbour_type || 's' as reason,
    counted.neighbour_type,
    counted.distinct_neighbours,
    thresholds.max_distinct_neighbours,
    counted.evidence_messages,
    counted.first_neighbour,
    counted.last_neighbour,
    counted.example_message_id

from counted
join thresholds
    on thresholds.identifier_type = counted.identifier_type
    and thresholds.neighbour_type = counted.neighbour_type
where counted.distinct_neighbours > thresholds.max_distinct_neighbours
