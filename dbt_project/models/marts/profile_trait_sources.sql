{{ config(
    materialized='incremental',
    meta={'build_watermark': 'updated_at'},
    incremental_strategy='replace_keys',
    unique_key='profile_id',
    key_only_when_null='trait_key',
    on_schema_change='append_new_columns',
) }}

{#- Merged traits, one row per profile and trait key, with where the winning value came from.
    marts.profiles.traits is these rows as one JSON object. Incremental as marts.profiles: a build
    rebuilds only the profiles that changed (int_profile_changes) or are gone. -#}
{%- set incremental = is_incremental() -%}
{%- set profile_changes = ref('int_profile_changes') -%}
with
{%- if incremental %}

-- few profiles, read by every step below: computed once
changed as {{ materialized_cte() }} (

    {{ profiles_changed_since(this, profile_changes) }}

),
{%- endif %}

events as (

    select * from {{ ref('profile_events') }}
    where profile_id is not null
    {%- if incremental %}
        and profile_id in (select profile_id from changed)
    {%- endif %}

),

trait_keys as (

    select
        profile_id,
        message_id,
        event_at,
        case when source = 'contacts' then 'list:' || list_name else source end as trait_source,
        file_path,
        line_number,
        traits,
        {{ json_object_keys('traits') }} as trait_key

    from events
    where {{ json_is_present('traits') }}

),

trait_values as (

    select
        profile_id,
        message_id,
        event_at,
        trait_source,
        file_path,
        line_number,
        trait_key,
        {{ json_get_key('traits', 'trait_key') }} as trait_value

    from trait_keys

),

-- Traits merge per key: the last non-null value by event time wins, after the source order of
-- `custom_trait_sources` when the trait has one.
ranked as (

    select
        *,
        count(*) over (partition by profile_id, trait_key) as values_seen,
        row_number() over (
            partition by profile_id, trait_key
            order by
                case
                    {%- for trait, sources in var('custom_trait_sources', {}).items() %}
                    {%- for source in sources %}
                    when trait_key = '{{ trait }}' and trait_source = '{{ source }}' then {{ loop.index }}
                    {%- endfor %}
                    {%- endfor %}
                    else 1000
                end,
                event_at desc,
                message_id desc
        ) as recency_rank

    from trait_values
    where {{ json_is_present('trait_value') }}

)

select
    profile_id,
    trait_key,
    trait_value,
    trait_source,
    message_id,
    event_at,
    file_path,
    line_number,
    values_seen,
    {{ build_timestamp() }} as updated_at

from ranked
where recency_rank = 1
{%- if incremental %}

-- Each profile rebuilt, by its id alone: replace_keys deletes its rows first (it may have fewer
-- traits now, or none).
union all

select
    {{ key_only_columns(['profile_id', 'trait_key', 'trait_value', 'trait_source', 'message_id', 'event_at', 'file_path',
                        'line_number', 'values_seen', 'updated_at'], 'changed.profile_id') }}

from changed
{%- endif %}
