{{ config(
    materialized='incremental',
    meta={'build_watermark': 'updated_at'},
    incremental_strategy='replace_keys',
    unique_key='message_id',
    key_only_when_null='link_status',
    on_schema_change='append_new_columns',
) }}

{#- Why each identifier is in its profile: every link a message or contact row makes, with its
    evidence, and whether it was made or refused by merge protection.

    Incremental: a build rewrites the links of the messages whose identifiers int_identifiers
    rewrote since the last build (they arrived, or changed type), of those that carry an identifier
    whose profile or junk status changed since, of the messages that are gone, and of every message
    with a refused link: both its profiles may be unchanged, but each may have gained or lost
    identifiers, and with them the limit the link would break (refused links are few). -#}
{%- set incremental = is_incremental() -%}
{%- set profile_ids = ref('int_profile_ids') %}
-- depends_on: {{ ref('int_identifiers') }}
with

{%- if incremental %}

last_build as (

    select max(updated_at) as updated_at
    from {{ this }}

),

changed as (

    {{ messages_reidentified_or_reprofiled_since('last_build') }}

    union

    {{ messages_gone_from(this) }}

    union

    select message_id from {{ this }} where link_status = 'refused'

),
{%- endif %}

placed as (

    select
        edges.*,
        from_profile.profile_id as from_profile_id,
        to_profile.profile_id as to_profile_id

    from {{ ref('int_identity_edges') }} as edges
    join {{ profile_ids }} as from_profile
        on from_profile.identifier_type = edges.from_type
        and from_profile.identifier_value = edges.from_value
    join {{ profile_ids }} as to_profile
        on to_profile.identifier_type = edges.to_type
        and to_profile.identifier_value = edges.to_value
    {%- if incremental %}
    where edges.message_id in (select message_id from changed)
    {%- endif %}

),

-- The two profiles of each refused link, one row each (an equi-join below, not an `in` that
-- compares every pair with every profile).
refused_pairs as (

    select distinct from_profile_id, to_profile_id
    from placed
    where from_profile_id <> to_profile_id

),

refused_pair_profiles as (

    select from_profile_id, to_profile_id, from_profile_id as profile_id from refused_pairs
    union all
    select from_profile_id, to_profile_id, to_profile_id as profile_id from refused_pairs

),

type_counts as (

    select
        profile_ids.profile_id,
        nodes.identifier_type,
        count(*) as identifiers,
        max(nodes.max_per_profile) as max_per_profile

    from {{ profile_ids }} as profile_ids
    join {{ ref('int_identity_nodes') }} as nodes
        on nodes.identifier_type = profile_ids.identifier_type
        and nodes.identifier_value = profile_ids.identifier_value
    where profile_ids.profile_id in (select profile_id from refused_pair_profiles)
    group by 1, 2

),

-- A refused link joins two profiles whose identifiers together break a limit; name the limits.
refusals as (

    select
        pair.from_profile_id,
        pair.to_profile_id,
        min(pair.identifier_type || ' limit ' || cast(pair.max_per_profile as {{ dbt.type_string() }}))
            as refusal_reason

    from (
        select
            pair.from_profile_id,
            pair.to_profile_id,
            counts.identifier_type,
            sum(counts.identifiers) as identifiers,
            max(counts.max_per_profile) as max_per_profile
        from refused_pair_profiles as pair
        join type_counts as counts on counts.profile_id = pair.profile_id
        group by 1, 2, 3
    ) as pair
    where pair.identifiers > pair.max_per_profile
    group by 1, 2

)

select
    placed.message_id,
    messages.message_type,
    messages.event_name,
    placed.source,
    placed.event_at,
    placed.from_type,
    placed.from_value,
    placed.to_type,
    placed.to_value,
    case when placed.from_profile_id = placed.to_profile_id then 'linked' else 'refused' end as link_status,
    refusals.refusal_reason,
    placed.from_profile_id,
    placed.to_profile_id,
    messages.list_name,
    messages.file_path,
    messages.line_number,
    {{ build_timestamp() }} as updated_at

from placed
join {{ ref('int_messages') }} as messages on messages.message_id = placed.message_id
left join refusals
    on refusals.from_profile_id = placed.from_profile_id
    and refusals.to_profile_id = placed.to_profile_id
{%- if incremental %}

-- The changed messages without links now, by their id alone: replace_keys deletes their rows.
union all

select
    {{ key_only_columns(['message_id', 'message_type', 'event_name', 'source', 'event_at', 'from_type', 'from_value',
                        'to_type', 'to_value', 'link_status', 'refusal_reason', 'from_profile_id', 'to_profile_id',
                        'list_name', 'file_path', 'line_number', 'updated_at'], 'changed.message_id') }}

from changed
left join (select distinct message_id from placed) as linking on linking.message_id = changed.message_id
where linking.message_id is null
{%- endif %}
