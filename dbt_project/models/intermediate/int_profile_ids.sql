{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key=['identifier_type', 'identifier_value'],
    key_only_when_null='profile_id',
    full_refresh=false,
    on_schema_change=sync_columns_where_possible(),
) }}

{#- Stable profile ids. The first build names each profile after its oldest identifier
    (int_identity_components.derived_profile_id). Later builds keep every profile's id: a profile
    belongs to the cluster that now holds its oldest identifier; when one cluster holds several
    earlier profiles (they merged), the oldest survives and the others are recorded in
    marts.profile_merges; a cluster with no earlier profile gets a derived id. This model reads its
    own previous state and is kept by `dbt build --full-refresh` (ids must outlive rebuilds); to
    start the naming over, drop intermediate.int_profile_ids and marts.profile_merges.
    `changed_at` is when the identifier's profile or junk status last changed: profile_events
    re-places the messages of the identifiers changed since it last read them.

    Incremental: a build places only the identifiers of the components int_identity_components
    wrote since the one this model last read (`components_built_at`), and deletes the rows of the
    identifiers that are gone. An earlier profile lies within one component, and a component is
    recomputed whole, so the identifiers placed hold every earlier profile they touch. -#}
with

clusters as (

    select
        identifier_type,
        identifier_value,
        derived_profile_id,
        built_at as components_built_at,
        first_seen_at,
        is_junk

    from {{ ref('int_identity_components') }} as components
    {%- if is_incremental() %}
    where built_at > (
        select coalesce(max(components_built_at), cast('1900-01-01' as timestamp)) from {{ this }}
    )
    {%- endif %}

),

previous as (

    {% if is_incremental() %}
    select
        identifier_type,
        identifier_value,
        profile_id,
        profile_first_seen_at,
        is_junk,
        changed_at
    from {{ this }}
    {% else %}
    select
        cast(null as {{ dbt.type_string() }}) as identifier_type,
        cast(null as {{ dbt.type_string() }}) as identifier_value,
        cast(null as {{ dbt.type_string() }}) as profile_id,
        cast(null as timestamp) as profile_first_seen_at,
        cast(null as {{ dbt.type_boolean() }}) as is_junk,
        cast(null as timestamp) as changed_at
    where 1 = 0
    {% endif %}

),

placed as (

    select
        clusters.*,
        previous.profile_id as previous_profile_id,
        previous.profile_first_seen_at as previous_profile_first_seen_at,
        previous.is_junk as previous_is_junk,
        previous.changed_at as previous_changed_at

    from clusters
    left join previous
        on previous.identifier_type = clusters.identifier_type
        and previous.identifier_value = clusters.identifier_value

),

-- An earlier profile goes with the cluster that holds its oldest identifier.
earlier_profiles as (

    select previous_profile_id, anchor_type, anchor_value, profile_first_seen_at
    from (
        select
            previous_profile_id,
            identifier_type as anchor_type,
            identifier_value as anchor_value,
            min(previous_profile_first_seen_at) over (partition by previous_profile_id) as profile_first_seen_at,
            row_number() over (partition by previous_profile_id order by {{ identifier_age_order('placed') }}) as age_rank
        from placed
        where previous_profile_id is not null
    ) as ranked
    where age_rank = 1

),

-- Of the earlier profiles a cluster holds, the oldest survives.
survivors as (

    select derived_profile_id, profile_id, profile_first_seen_at
    from (
        select
            clusters.derived_profile_id,
            earlier_profiles.previous_profile_id as profile_id,
            earlier_profiles.profile_first_seen_at,
            row_number() over (
                partition by clusters.derived_profile_id
                order by earlier_profiles.profile_first_seen_at, earlier_profiles.previous_profile_id
            ) as age_rank
        from earlier_profiles
        join clusters
            on clusters.identifier_type = earlier_profiles.anchor_type
            and clusters.identifier_value = earlier_profiles.anchor_value
    ) as ranked
    where age_rank = 1

),

-- A new cluster is named after its oldest identifier, unless an earlier profile had that name (its
-- oldest identifier now sits in another cluster): then the name is made new for this build.
new_names as (

    select
        new_clusters.derived_profile_id,
        case
            when taken.profile_id is not null
                then 'prof_' || substr({{ dbt.hash("new_clusters.derived_profile_id || '/' || '" ~ run_started_at.isoformat() ~ "'") }}, 1, 20)
            else new_clusters.derived_profile_id
        end as profile_id

    from (
        select distinct derived_profile_id from clusters
        where derived_profile_id not in (select derived_profile_id from survivors)
    ) as new_clusters
    left join (select distinct profile_id from previous) as taken
        on taken.profile_id = new_clusters.derived_profile_id

),

cluster_first_seen as (

    select derived_profile_id, min(first_seen_at) as first_seen_at
    from clusters
    group by 1

),

assigned as (

    select
        placed.identifier_type,
        placed.identifier_value,
        coalesce(survivors.profile_id, new_names.profile_id) as profile_id,
        placed.previous_profile_id,
        case
            when survivors.profile_first_seen_at < cluster_first_seen.first_seen_at then survivors.profile_first_seen_at
            else cluster_first_seen.first_seen_at
        end as profile_first_seen_at,
        placed.is_junk,
        placed.previous_is_junk,
        placed.previous_changed_at,
        placed.components_built_at

    from placed
    join cluster_first_seen on cluster_first_seen.derived_profile_id = placed.derived_profile_id
    left join survivors on survivors.derived_profile_id = placed.derived_profile_id
    left join new_names on new_names.derived_profile_id = placed.derived_profile_id

)

select
    identifier_type,
    identifier_value,
    profile_id,
    previous_profile_id,
    profile_first_seen_at,
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as assigned_at,
    is_junk,
    case
        when profile_id = previous_profile_id and is_junk = previous_is_junk then previous_changed_at
        else {{ build_timestamp() }}
    end as changed_at,
    components_built_at

from assigned
{%- if is_incremental() %}

union all

-- The identifiers that are gone (a contact record dropped, an alias's previousId that is a user id
-- now): key-only rows delete theirs (replace_keys).
select
    previous.identifier_type,
    previous.identifier_value,
    {%- for column in ['profile_id', 'previous_profile_id', 'profile_first_seen_at', 'assigned_at', 'is_junk',
                       'changed_at', 'components_built_at'] %}
    null as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
from {{ this }} as previous
left join {{ ref('int_identity_components') }} as components
    on components.identifier_type = previous.identifier_type
    and components.identifier_value = previous.identifier_value
where components.identifier_type is null
{%- endif %}
