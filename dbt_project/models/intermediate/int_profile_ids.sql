{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key=['identifier_type', 'identifier_value'],
    key_only_when_null='node_id',
    full_refresh=false,
    on_schema_change='append_new_columns',
) }}

{#- Stable profile ids. The first build names each profile after its oldest identifier
    (int_identity_components.derived_profile_id). Later builds keep every profile's id: a profile
    belongs to the cluster that now holds its oldest identifier; when one cluster holds several
    earlier profiles (they merged), the oldest survives and the others are recorded in
    marts.profile_merges; a cluster with no earlier profile gets a derived id. This model reads its
    own previous state and is kept by `dbt build --full-refresh` (ids must outlive rebuilds); to
    start the naming over, drop intermediate.int_profile_ids and marts.profile_merges.
    `changed_at` is when the identifier's profile or junk status last changed: profile_events
    re-places the messages of the identifiers changed since it last read them. -#}
{%- set has_changed_at = is_incremental() and not missing_columns(this, ['changed_at']) %}
with

clusters as (

    select
        components.identifier_type,
        components.identifier_value,
        components.node_id,
        components.component_id,
        components.derived_profile_id,
        nodes.first_seen_at,
        nodes.is_junk

    from {{ ref('int_identity_components') }} as components
    join {{ ref('int_identity_nodes') }} as nodes on nodes.node_id = components.node_id

),

previous as (

    {% if is_incremental() %}
    select
        identifier_type,
        identifier_value,
        profile_id,
        profile_first_seen_at,
        {#- (a table from before these columns: every identifier counts as changed once) #}
        {{ 'is_junk' if has_changed_at else 'cast(null as ' ~ dbt.type_boolean() ~ ')' }} as is_junk,
        {{ 'changed_at' if has_changed_at else 'cast(null as timestamp)' }} as changed_at
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

-- An earlier profile goes with the cluster that holds its oldest identifier (the smallest node).
earlier_profiles as (

    select
        previous_profile_id,
        min(node_id) as anchor_node_id,
        min(previous_profile_first_seen_at) as profile_first_seen_at

    from placed
    where previous_profile_id is not null
    group by 1

),

-- Of the earlier profiles a cluster holds, the oldest survives.
survivors as (

    select component_id, profile_id, profile_first_seen_at
    from (
        select
            clusters.component_id,
            earlier_profiles.previous_profile_id as profile_id,
            earlier_profiles.profile_first_seen_at,
            row_number() over (
                partition by clusters.component_id
                order by earlier_profiles.profile_first_seen_at, earlier_profiles.previous_profile_id
            ) as age_rank
        from earlier_profiles
        join clusters on clusters.node_id = earlier_profiles.anchor_node_id
    ) as ranked
    where age_rank = 1

),

-- A new cluster is named after its oldest identifier, unless an earlier profile had that name (its
-- oldest identifier now sits in another cluster): then the name is made new for this build.
new_names as (

    select distinct
        clusters.component_id,
        case
            when taken.previous_profile_id is not null
                then 'prof_' || substr({{ dbt.hash("clusters.derived_profile_id || '/' || '" ~ run_started_at.isoformat() ~ "'") }}, 1, 20)
            else clusters.derived_profile_id
        end as profile_id

    from clusters
    left join (select distinct previous_profile_id from earlier_profiles) as taken
        on taken.previous_profile_id = clusters.derived_profile_id
    where clusters.component_id not in (select component_id from survivors)

),

cluster_first_seen as (

    select component_id, min(first_seen_at) as first_seen_at
    from clusters
    group by 1

),

assigned as (

    select
        placed.identifier_type,
        placed.identifier_value,
        placed.node_id,
        placed.component_id,
        coalesce(survivors.profile_id, new_names.profile_id) as profile_id,
        placed.previous_profile_id,
        case
            when survivors.profile_first_seen_at < cluster_first_seen.first_seen_at then survivors.profile_first_seen_at
            else cluster_first_seen.first_seen_at
        end as profile_first_seen_at,
        placed.is_junk,
        placed.previous_is_junk,
        placed.previous_changed_at

    from placed
    join cluster_first_seen on cluster_first_seen.component_id = placed.component_id
    left join survivors on survivors.component_id = placed.component_id
    left join new_names on new_names.component_id = placed.component_id

)

select
    identifier_type,
    identifier_value,
    node_id,
    component_id,
    profile_id,
    previous_profile_id,
    profile_first_seen_at,
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as assigned_at,
    is_junk,
    case
        when profile_id = previous_profile_id and is_junk = previous_is_junk then previous_changed_at
        else {{ build_timestamp() }}
    end as changed_at

from assigned
{%- if is_incremental() %}

union all

-- Every row is written again (the identifiers gone since the last build, a contact record dropped or
-- an alias's previousId that is a user id now, with them): one key-only row with a null key names
-- every key (replace_keys), which costs less than naming each.
select
    cast(null as {{ dbt.type_string() }}) as identifier_type,
    cast(null as {{ dbt.type_string() }}) as identifier_value,
    cast(null as {{ dbt.type_bigint() }}) as node_id,
    cast(null as {{ dbt.type_bigint() }}) as component_id,
    cast(null as {{ dbt.type_string() }}) as profile_id,
    cast(null as {{ dbt.type_string() }}) as previous_profile_id,
    cast(null as timestamp) as profile_first_seen_at,
    cast(null as timestamp) as assigned_at,
    cast(null as {{ dbt.type_boolean() }}) as is_junk,
    cast(null as timestamp) as changed_at
{%- endif %}
