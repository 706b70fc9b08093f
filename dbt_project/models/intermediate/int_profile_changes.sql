{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='profile_id',
    key_only_when_null='fingerprint',
    on_schema_change='append_new_columns',
    meta={'dagster': {'group': 'profiles'}},
) }}

{#- When each profile last changed, for the profile marts that rebuild only the profiles that did
    (profiles, profile_trait_sources). A profile's fingerprint is a hash of its identifiers' rows in
    profile_identifiers and of its messages in profile_events (each message's id and `updated_at`,
    which changes whenever profile_events re-places it), and of the settings the marts read
    (`hash_pii_in_marts`, `custom_trait_sources`): it changes when the profile gains, loses or
    changes an identifier or a message, however that came about (a merge, a split by merge
    protection, a record gone from a list). `changed_at` is when this build saw it change; an
    unchanged fingerprint keeps the last build's. Every row is written each build. -#}
{%- set settings = local_md5(tojson([var('hash_pii_in_marts', false) | string | lower,
                                     var('custom_trait_sources', {})], sort_keys=true)) -%}
with

identifier_fingerprints as (

    select
        profile_id,
        bit_xor({{ row_hash(['identifier_type', 'identifier_value', 'first_seen_at', 'last_seen_at', 'message_count']) }})
            as fingerprint

    from {{ ref('profile_identifiers') }}
    group by 1

),

event_fingerprints as (

    select
        profile_id,
        bit_xor({{ row_hash(['message_id', 'updated_at']) }}) as fingerprint

    from {{ ref('profile_events') }}
    where profile_id is not null
    group by 1

),

fingerprints as (

    select
        identifier_fingerprints.profile_id,
        {{ row_hash(['identifier_fingerprints.fingerprint', 'coalesce(event_fingerprints.fingerprint, 0)',
                     "'" ~ settings ~ "'"]) }} as fingerprint

    from identifier_fingerprints
    left join event_fingerprints on event_fingerprints.profile_id = identifier_fingerprints.profile_id

)

select
    fingerprints.profile_id,
    fingerprints.fingerprint,
    {%- if is_incremental() %}
    case
        when previous.fingerprint = fingerprints.fingerprint then previous.changed_at
        else {{ build_timestamp() }}
    end as changed_at
    {%- else %}
    {{ build_timestamp() }} as changed_at
    {%- endif %}

from fingerprints
{%- if is_incremental() %}
left join {{ this }} as previous on previous.profile_id = fingerprints.profile_id

-- Every row is written again: one key-only row with a null key names them all (replace_keys).
union all

select
    cast(null as {{ dbt.type_string() }}) as profile_id,
    null as fingerprint,
    cast(null as timestamp) as changed_at
{%- endif %}
