{{ config(
    materialized='incremental',
    meta={'build_watermark': 'built_at'},
    incremental_strategy='replace_keys',
    unique_key=['identifier_type', 'identifier_value'],
    key_only_when_null='message_count',
    on_schema_change=sync_columns_where_possible(),
    post_hook=["{{ identifier_rows_counted('is_linkable') }}", "{{ replaced_identifiers_emptied() }}"],
) }}

{#- One row per linkable identifier: the node of the identity graph. Not numbered here: a number
    would follow first sightings, which new identifiers shift, so int_identity_components numbers
    only the nodes a build works on.

    Incremental: a build summarises again only the identifiers of the rows int_identifiers wrote or
    replaced since the last build, and those that are junk now or were (junk detection is a small
    set), and replaces their rows (`replace_keys`; an identifier with no row left loses its node).
    After an erasure or under other rules it summarises every identifier
    (macros/incremental/identifier_rows.sql). It is the last model to read int_identifiers' replaced
    rows, and empties them. -#}
{%- set counted_since = identifier_rows_since('is_linkable') if is_incremental() else none -%}
{%- set output_columns = ['identifier_type', 'identifier_value', 'first_seen_at', 'last_seen_at', 'message_count',
                          'priority', 'max_per_profile', 'is_junk', 'built_at'] -%}
with

junk as (

    select distinct identifier_type, identifier_value from {{ ref('int_identity_junk') }}

),
{%- if counted_since %}

changed as {{ materialized_cte() }} (

    {{ identifiers_of_rows_since(counted_since, 'is_linkable') }}

    union

    select identifier_type, identifier_value from junk

    union

    select identifier_type, identifier_value from {{ this }} where is_junk

),

linkable as (

    select identifiers.*
    from {{ ref('int_identifiers') }} as identifiers
    join changed
        on changed.identifier_type = identifiers.identifier_type
        and changed.identifier_value = identifiers.identifier_value
    where identifiers.is_linkable

),
{%- else %}

linkable as (

    select * from {{ ref('int_identifiers') }}
    where is_linkable

),
{%- endif %}

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
    junk.identifier_type is not null as is_junk,
    {{ build_timestamp() }} as built_at

from summarized
left join junk
    on junk.identifier_type = summarized.identifier_type
    and junk.identifier_value = summarized.identifier_value
-- In an incremental build, the rows of the identifiers summarised again are replaced (by fewer or none).
{{ identifier_key_only_rows(output_columns, counted_since, 'changed') }}
