{{ config(
    materialized='incremental',
    meta={'build_watermark': 'updated_at'},
    incremental_strategy='replace_keys',
    unique_key=['identifier_type', 'identifier_value'],
    key_only_when_null='profile_id',
    on_schema_change='append_new_columns',
) }}

{#- The identity map: every linkable identifier with its profile and sightings.

    Incremental: a build rewrites the rows of the identifiers whose node (int_identity_nodes.built_at:
    new, counted again, junk status) or profile (int_profile_ids.changed_at) changed since its last
    build, and deletes those of the identifiers that are gone (`replace_keys`); the others keep their
    rows. (A table from before `updated_at` gets it from migration 6, as written before every change:
    its next build rewrites every row.) -#}
{%- set incremental = is_incremental() -%}
{%- set columns = ['identifier_type', 'identifier_value', 'profile_id', 'first_seen_at', 'last_seen_at',
                   'message_count', 'updated_at'] -%}
with
{%- if incremental %}

last_build as (

    -- an empty map (a first build without a linkable identifier): every identifier is new
    select coalesce(max(updated_at), cast('1900-01-01' as timestamp)) as updated_at
    from {{ this }}

),

-- The identifiers whose profile or junk status changed since (new ones too) ...
moved as (

    select profile_ids.identifier_type, profile_ids.identifier_value
    from {{ ref('int_profile_ids') }} as profile_ids
    join last_build on profile_ids.changed_at > last_build.updated_at

),

-- ... and the nodes written since (new, counted again, junk status): read once.
nodes as (

    select nodes.*
    from {{ ref('int_identity_nodes') }} as nodes
    cross join last_build
    left join moved
        on moved.identifier_type = nodes.identifier_type
        and moved.identifier_value = nodes.identifier_value
    where nodes.built_at > last_build.updated_at or moved.identifier_type is not null

),
{%- else %}

nodes as (

    select * from {{ ref('int_identity_nodes') }}

),
{%- endif %}

components as (

    select * from {{ ref('int_profile_ids') }}

)

select
    nodes.identifier_type,
    nodes.identifier_value,
    components.profile_id,
    nodes.first_seen_at,
    nodes.last_seen_at,
    nodes.message_count,
    {{ build_timestamp() }} as updated_at

from nodes
join components
    on components.identifier_type = nodes.identifier_type
    and components.identifier_value = nodes.identifier_value
{%- if incremental %}

union all

-- The identifiers that are gone, by their key alone: replace_keys deletes their rows.
select {{ key_only_columns(columns, ['previous.identifier_type', 'previous.identifier_value']) }}
from {{ this }} as previous
left join components
    on components.identifier_type = previous.identifier_type
    and components.identifier_value = previous.identifier_value
where components.identifier_type is null
{%- endif %}
