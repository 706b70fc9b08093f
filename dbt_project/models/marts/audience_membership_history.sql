{{ config(
    materialized='incremental',
    meta={'build_watermark': 'changed_at'},
    incremental_strategy='append',
    full_refresh=false,
    on_schema_change='append_new_columns',
) }}

{#- Who entered and who left each audience, build after build (appended, kept by --full-refresh).
    Membership at any past time: the profiles whose latest change at or before it is 'entered'. -#}
with

current_members as (

    select audience, profile_id from {{ ref('audience_members') }}

),

previous_members as (

    {% if is_incremental() %}
    select audience, profile_id
    from (
        select
            audience,
            profile_id,
            change,
            row_number() over (partition by audience, profile_id order by changed_at desc) as recency
        from {{ this }}
    ) as latest
    where recency = 1 and change = 'entered'
    {% else %}
    select
        cast(null as {{ dbt.type_string() }}) as audience,
        cast(null as {{ dbt.type_string() }}) as profile_id
    where 1 = 0
    {% endif %}

),

entered as (

    select current_members.audience, current_members.profile_id
    from current_members
    left join previous_members
        on previous_members.audience = current_members.audience
        and previous_members.profile_id = current_members.profile_id
    where previous_members.profile_id is null

),

exited as (

    select previous_members.audience, previous_members.profile_id
    from previous_members
    left join current_members
        on current_members.audience = previous_members.audience
        and current_members.profile_id = previous_members.profile_id
    where current_members.profile_id is null

)

select
    audience,
    profile_id,
    'entered' as change,
    {{ build_timestamp() }} as changed_at
from entered

union all

select
    audience,
    profile_id,
    'exited' as change,
    {{ build_timestamp() }} as changed_at
from exited
