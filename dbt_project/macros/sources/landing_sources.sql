{#- Registered landing sources (`vars: landing_sources`): each has a staging model
    `stg_<name>__events` in int_messages' message shape; int_messages takes them all in. -#}

{#- One `select` per registered source in int_messages' column order, joined by `union all`;
    nothing when no source is registered. -#}
{% macro landing_source_messages() %}
    {%- for name in var('landing_sources', {}) %}
    {%- if not loop.first %}
    union all
    {%- endif %}
    select
        message_id,
        '{{ name }}' as source,
        message_type,
        event_at,
        -- a source's staging model times its events its own way: not assessed here
        cast(null as {{ dbt.type_string() }}) as event_at_status,
        cast(null as timestamp) as sent_timestamp_at,
        cast(null as timestamp) as original_timestamp_at,
        cast(null as timestamp) as sent_at,
        cast(null as timestamp) as received_at,
        anonymous_id,
        user_id,
        cast(null as {{ dbt.type_string() }}) as contact_email,
        cast(null as {{ dbt.type_string() }}) as contact_phone,
        context,
        event_name,
        cast(null as {{ dbt.type_string() }}) as previous_id,
        cast(null as {{ dbt.type_string() }}) as group_id,
        properties,
        traits,
        cast(null as {{ type_json() }}) as group_traits,
        cast(null as {{ dbt.type_string() }}) as list_name,
        cast(null as {{ dbt.type_int() }}) as list_row_number,
        load_id,
        file_path,
        line_number,
        loaded_at,
        -- a table rebuilt whole by each build (as the contact records)
        {{ build_timestamp() }} as staged_at
    from {{ ref('stg_' ~ name ~ '__events') }}
    {%- endfor %}
{% endmacro %}
