{#- Merged traits, one row per profile and trait key, with where the winning value came from.
    marts.profiles.traits is these rows as one JSON object. -#}
with

events as (

    select * from {{ ref('profile_events') }}
    where profile_id is not null

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
    values_seen

from ranked
where recency_rank = 1
