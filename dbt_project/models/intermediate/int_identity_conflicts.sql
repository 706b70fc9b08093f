{{ config(
    materialized='incremental',
    meta={'build_watermark': 'built_at'},
    incremental_strategy='replace_keys',
    unique_key=['identifier_type', 'identifier_value'],
    key_only_when_null='neighbour_type',
    on_schema_change=sync_columns_where_possible(),
    post_hook="{{ identifier_rows_counted(conflicts_counted_rows()) }}",
) }}

{#- Identifiers seen with more distinct identifiers of a type than a real person's identifier would
    be, found from the data and compared with the `junk_detection` thresholds of the identity rules,
    and what their type's `on_conflict` makes of each (macros/identity/stitching.sql):

    - a direct threshold (`anonymous_id: {user_id: 1}`) counts the identifiers of the neighbour type
      seen in the same messages: a household laptop with two user ids. Under `on_conflict: junk` (the
      default) the identifier links no one (int_identity_junk); under `latest` / `first` it links only
      to the neighbour of that type it was seen with last / first (`kept_neighbour`): by event time,
      the same time by the larger / smaller message id (int_identity_edges drops its links in every
      message without that neighbour, or with another of the type).
    - a threshold through another type (`email: {anonymous_id.user_id: 1}`) counts the identifiers of
      the far type seen with the identifier's neighbours of the hop type, in their other messages: a
      store's placeholder e-mail typed on the devices of strangers who sign up with their own user ids
      (or type their own e-mails). Devices that are over a direct threshold themselves (shared ones) are
      not counted through, nor the identifiers it was seen with in its own messages (an e-mail's own
      user id). Such an identifier is always junk: no one of them is its owner.

    One row per identifier and exceeded neighbour type.

    Incremental: a build counts again only the identifiers whose count can have changed: those of
    the rows int_identifiers wrote or replaced since the last count, and, for a threshold through
    another type, the identifiers seen with such a hop (a device that gained a user id); it replaces
    their rows (`replace_keys` by identifier). After an erasure or under other rules it counts every
    identifier (macros/incremental/identifier_rows.sql). -#}
{%- set thresholds = junk_thresholds() -%}
{%- set neighbour_types = thresholds.direct | map(attribute='neighbour') | unique | list -%}
{%- set far_types = thresholds.through | map(attribute='far') | unique | list -%}
{%- set counted_since = identifier_rows_since(conflicts_counted_rows()) if is_incremental() else none -%}
{%- set output_columns = ['identifier_type', 'identifier_value', 'neighbour_type', 'distinct_neighbours',
                          'max_distinct_neighbours', 'first_neighbour', 'last_neighbour', 'on_conflict', 'kept_neighbour',
                          'kept_neighbour_at', 'kept_message_id', 'built_at'] -%}
with

-- Read again by each reader, not kept: a copy of the identifiers of every message spills at millions of people.
linkable as {{ unmaterialized_cte() }} (

    select message_id, event_at, identifier_type, identifier_value
    from {{ ref('int_identifiers') }}
    -- an identifier alone in its message has no neighbours there
    where {{ conflicts_counted_rows() }}

),

thresholds as (

    {{ threshold_rows(thresholds.direct) }}

),

through_thresholds as (

    {{ threshold_rows(thresholds.through, with_hops=true) }}

),
{%- if counted_since %}

-- The identifiers of the rows int_identifiers wrote or replaced since the last count ...
changed as {{ materialized_cte() }} (

    {{ identifiers_of_rows_since(counted_since, conflicts_counted_rows()) }}

),

-- ... and, for a threshold through another type, every identifier seen with one of them as a hop
-- (what a device was seen with changed, so did what an e-mail typed on it is seen with through it).
recounted as {{ materialized_cte() }} (

    select identifier_type, identifier_value from changed

    union

    select subject.identifier_type, subject.identifier_value
    from changed
    join (select distinct identifier_type, hop_type from through_thresholds) as hop_types
        on hop_types.hop_type = changed.identifier_type
    join linkable as hop
        on hop.identifier_type = changed.identifier_type
        and hop.identifier_value = changed.identifier_value
    join linkable as subject
        on subject.message_id = hop.message_id
        and subject.identifier_type = hop_types.identifier_type

),

subjects as {{ materialized_cte() }} (

    select linkable.*
    from linkable
    join recounted
        on recounted.identifier_type = linkable.identifier_type
        and recounted.identifier_value = linkable.identifier_value

),
{%- else %}

subjects as {{ unmaterialized_cte() }} (

    select * from linkable

),
{%- endif %}

-- The identifiers of the types some threshold counts as neighbours: by default user ids, e-mails
-- and phones, not the anonymous id every message carries, so this side of the pair join is small.
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

    from subjects as subject
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

direct_over as (

    select * from counted
    where distinct_neighbours > max_distinct_neighbours

),

-- The identifiers over a direct threshold: those counted here, and (in an incremental count) those
-- the last count found whose count cannot have changed.
shared as (

    select identifier_type, identifier_value from direct_over
    {%- if counted_since %}

    union

    select previous.identifier_type, previous.identifier_value
    from {{ this }} as previous
    left join recounted
        on recounted.identifier_type = previous.identifier_type
        and recounted.identifier_value = previous.identifier_value
    where previous.neighbour_type not like '%.%' and recounted.identifier_type is null
    {%- endif %}

),

-- The hop identifiers (e.g. devices) of each identifier a threshold through them counts for.
subject_hops as (

    select distinct
        subject.identifier_type,
        subject.identifier_value,
        hop.identifier_type as hop_type,
        hop.identifier_value as hop_value

    from subjects as subject
    join (select distinct identifier_type, hop_type from through_thresholds) as hop_types
        on hop_types.identifier_type = subject.identifier_type
    join linkable as hop
        on hop.message_id = subject.message_id
        and hop.identifier_type = hop_types.hop_type

),

-- What those hops were seen with, in any of their messages; a hop over a direct threshold (a
-- shared device) says nothing about one person and is passed over.
hop_neighbours as (

    select distinct
        hop.identifier_type as hop_type,
        hop.identifier_value as hop_value,
        far.identifier_type as far_type,
        far.identifier_value as far_value

    from linkable as hop
    join (select distinct hop_type, hop_value from subject_hops) as hops
        on hops.hop_type = hop.identifier_type
        and hops.hop_value = hop.identifier_value
    join linkable as far
        on far.message_id = hop.message_id
        and {{ "far.identifier_type in ('" ~ far_types | join("', '") ~ "')" if far_types else "1 = 0" }}
    left join shared
        on shared.identifier_type = hop.identifier_type
        and shared.identifier_value = hop.identifier_value
    where shared.identifier_type is null

),

-- What each identifier was seen with itself, in its own messages: its owner's user id is no
-- stranger's (a person's e-mail, typed on a laptop that someone else signs in on, stays theirs).
direct_far as (

    select distinct
        subject.identifier_type,
        subject.identifier_value,
        far.identifier_type as far_type,
        far.identifier_value as far_value

    from subjects as subject
    join (select distinct identifier_type from through_thresholds) as subject_types
        on subject_types.identifier_type = subject.identifier_type
    join linkable as far
        on far.message_id = subject.message_id
        and {{ "far.identifier_type in ('" ~ far_types | join("', '") ~ "')" if far_types else "1 = 0" }}

),

through_counted as (

    select
        subject_hops.identifier_type,
        subject_hops.identifier_value,
        through_thresholds.neighbour_type,
        through_thresholds.max_distinct_neighbours,
        count(distinct hop_neighbours.far_value) as distinct_neighbours,
        min(hop_neighbours.far_value) as first_neighbour,
        max(hop_neighbours.far_value) as last_neighbour

    from subject_hops
    join through_thresholds
        on through_thresholds.identifier_type = subject_hops.identifier_type
        and through_thresholds.hop_type = subject_hops.hop_type
    join hop_neighbours
        on hop_neighbours.hop_type = subject_hops.hop_type
        and hop_neighbours.hop_value = subject_hops.hop_value
        and hop_neighbours.far_type = through_thresholds.far_type
        -- not the identifier itself (an e-mail's devices carry that e-mail)
        and not (hop_neighbours.far_type = subject_hops.identifier_type
                 and hop_neighbours.far_value = subject_hops.identifier_value)
    left join direct_far
        on direct_far.identifier_type = subject_hops.identifier_type
        and direct_far.identifier_value = subject_hops.identifier_value
        and direct_far.far_type = hop_neighbours.far_type
        and direct_far.far_value = hop_neighbours.far_value
    where direct_far.identifier_type is null
    group by 1, 2, 3, 4

),

exceeded as (

    select *, {{ identifier_on_conflict('identifier_type') }} as on_conflict
    from direct_over

    union all

    select *, 'junk' as on_conflict
    from through_counted
    where distinct_neighbours > max_distinct_neighbours

),

-- Under `latest` / `first`: the neighbour of the exceeded type seen last / first (read for the
-- few resolved identifiers only). Same event time: the larger / smaller message id, then value.
sightings as (

    select
        exceeded.identifier_type,
        exceeded.identifier_value,
        exceeded.neighbour_type,
        exceeded.on_conflict,
        neighbour.identifier_value as neighbour_value,
        subject.event_at,
        subject.message_id,
        row_number() over (
            partition by exceeded.identifier_type, exceeded.identifier_value, exceeded.neighbour_type
            order by subject.event_at desc nulls last, subject.message_id desc, neighbour.identifier_value desc
        ) as latest_rank,
        row_number() over (
            partition by exceeded.identifier_type, exceeded.identifier_value, exceeded.neighbour_type
            order by subject.event_at asc nulls last, subject.message_id asc, neighbour.identifier_value asc
        ) as first_rank

    from exceeded
    join subjects as subject
        on subject.identifier_type = exceeded.identifier_type
        and subject.identifier_value = exceeded.identifier_value
    join neighbours as neighbour
        on neighbour.message_id = subject.message_id
        and neighbour.identifier_type = exceeded.neighbour_type
        and not (neighbour.identifier_type = subject.identifier_type
                 and neighbour.identifier_value = subject.identifier_value)
    where exceeded.on_conflict in ('latest', 'first')

),

kept as (

    select * from sightings
    where (on_conflict = 'latest' and latest_rank = 1) or (on_conflict = 'first' and first_rank = 1)

)

select
    exceeded.identifier_type,
    exceeded.identifier_value,
    exceeded.neighbour_type,
    exceeded.distinct_neighbours,
    exceeded.max_distinct_neighbours,
    exceeded.first_neighbour,
    exceeded.last_neighbour,
    exceeded.on_conflict,
    kept.neighbour_value as kept_neighbour,
    kept.event_at as kept_neighbour_at,
    kept.message_id as kept_message_id,
    {{ build_timestamp() }} as built_at

from exceeded
left join kept
    on kept.identifier_type = exceeded.identifier_type
    and kept.identifier_value = exceeded.identifier_value
    and kept.neighbour_type = exceeded.neighbour_type
-- In an incremental build, the rows of the identifiers counted again are replaced (by fewer or none).
{{ identifier_key_only_rows(output_columns, counted_since, 'recounted') }}
