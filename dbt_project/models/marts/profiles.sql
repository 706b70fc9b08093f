with

identifiers as (

    select * from {{ ref('profile_identifiers') }}

),

events as (

    select * from {{ ref('profile_events') }}
    where profile_id is not null

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

trait_keys as (

    select
        profile_id,
        message_id,
        event_at,
        case when source = 'contacts' then 'list:' || list_name else source end as trait_source,
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
        trait_key,
        {{ json_get_key('traits', 'trait_key') }} as trait_value

    from trait_keys

),

-- Traits merge per key: the last non-null value by event time wins, after the source order of
-- `custom_trait_sources` when the trait has one.
latest_traits as (

    select
        *,
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

),

merged_traits as (

    select
        profile_id,
        {{ json_object_agg('trait_key', 'trait_value') }} as traits

    from latest_traits
    where recency_rank = 1
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
    coalesce(merged_traits.traits, cast('{}' as json)) as traits

from identity
left join activity on activity.profile_id = identity.profile_id
left join merged_traits on merged_traits.profile_id = identity.profile_id
