{{ config(
    materialized='incremental',
    meta={'build_watermark': 'updated_at'},
    incremental_strategy='replace_keys',
    unique_key='profile_id',
    key_only_when_null='identifier_count',
    on_schema_change='append_new_columns',
) }}

{#- One row per person. Incremental: a build rebuilds only the profiles whose identifiers or
    messages changed since the last one (int_profile_changes), and the profiles that are gone; it
    replaces their rows (`replace_keys`). -#}
{%- set incremental = is_incremental() -%}
{%- set profile_changes = ref('int_profile_changes') -%}
with
{%- if incremental %}

-- few profiles, read by every step below: computed once
changed as {{ materialized_cte() }} (

    {{ profiles_changed_since(this, profile_changes) }}

),
{%- endif %}

identifiers as (

    select * from {{ ref('profile_identifiers') }}
    {%- if incremental %}
    where profile_id in (select profile_id from changed)
    {%- endif %}

),

events as (

    select * from {{ ref('profile_events') }}
    where profile_id is not null
    {%- if incremental %}
        and profile_id in (select profile_id from changed)
    {%- endif %}

),

-- The best identifier of each type is the one seen most recently.
ranked_identifiers as (

    select
        *,
        row_number() over (
            partition by profile_id, identifier_type
            order by last_seen_at desc, identifier_value
        ) as recency_rank

    from identifiers

),

identity as (

    select
        profile_id,
        max(case when identifier_type = 'user_id' and recency_rank = 1 then identifier_value end) as user_id,
        max(case when identifier_type = 'email' and recency_rank = 1 then identifier_value end) as email,
        max(case when identifier_type = 'phone' and recency_rank = 1 then identifier_value end) as phone,
        count(*) as identifier_count,
        count(case when identifier_type = 'user_id' then 1 end) as user_id_count,
        count(case when identifier_type = 'anonymous_id' then 1 end) as anonymous_id_count

    from ranked_identifiers
    group by 1

),

activity as (

    select
        profile_id,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) as event_count

    from events
    group by 1

),

-- The winning value of each trait and where it came from (the merge rule is in profile_trait_sources).
trait_sources as (

    select * from {{ ref('profile_trait_sources') }}
    {%- if incremental %}
    where profile_id in (select profile_id from changed)
    {%- endif %}

),

merged_traits as (

    select
        profile_id,
        {{ json_object_agg('trait_key', 'trait_value') }} as traits

    from trait_sources
    group by 1

)

select
    identity.profile_id,
    identity.user_id,
    {{ personal_value('identity.email') }} as email,
    {{ personal_value('identity.phone') }} as phone,
    activity.first_seen_at,
    activity.last_seen_at,
    identity.user_id is null as is_anonymous,
    identity.identifier_count,
    identity.user_id_count,
    identity.anonymous_id_count,
    coalesce(activity.event_count, 0) as event_count,
    coalesce(merged_traits.traits, cast('{}' as {{ type_json() }})) as traits,
    {{ build_timestamp() }} as updated_at

from identity
left join activity on activity.profile_id = identity.profile_id
left join merged_traits on merged_traits.profile_id = identity.profile_id
{%- if incremental %}

-- Each profile rebuilt, by its id alone: replace_keys deletes its rows first (a gone profile has
-- no others).
union all

select
    {{ key_only_columns(['profile_id', 'user_id', 'email', 'phone', 'first_seen_at', 'last_seen_at', 'is_anonymous',
                        'identifier_count', 'user_id_count', 'anonymous_id_count', 'event_count', 'traits',
                        'updated_at'], 'changed.profile_id') }}

from changed
{%- endif %}
