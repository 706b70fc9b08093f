{{ config(materialized='view') }}

{#- Every copy of every accepted message in one shape: the Segment message types, the contact-list
    records and the registered landing sources, each staging model already de-duplicated within
    itself. A view: the staging tables hold each message already; int_messages keeps one copy. -#}
{%- set segment_models = {
    'stg_segment__tracks': {'event_name': 'event_name', 'properties': 'properties'},
    'stg_segment__identifies': {'traits': 'traits'},
    'stg_segment__pages': {'event_name': 'page_name', 'properties': 'properties'},
    'stg_segment__screens': {'event_name': 'screen_name', 'properties': 'properties'},
    'stg_segment__aliases': {'previous_id': 'previous_id'},
    'stg_segment__groups': {'group_id': 'group_id', 'group_traits': 'group_traits'},
} -%}
{%- set optional_columns = {
    'event_name': dbt.type_string(),
    'previous_id': dbt.type_string(),
    'group_id': dbt.type_string(),
    'properties': type_json(),
    'traits': type_json(),
    'group_traits': type_json(),
} -%}

with

segment_messages as (

    {%- for model, columns in segment_models.items() %}

    select
        message_id,
        'segment' as source,
        message_type,
        event_at,
        event_at_status,
        sent_timestamp_at,
        original_timestamp_at,
        sent_at,
        received_at,
        anonymous_id,
        user_id,
        cast(null as {{ dbt.type_string() }}) as contact_email,
        cast(null as {{ dbt.type_string() }}) as contact_phone,
        context,
        {%- for name, type in optional_columns.items() %}
        {%- if name == 'traits' and 'traits' not in columns %}
        context_traits as traits,
        {%- elif name in columns %}
        {{ columns[name] }} as {{ name }},
        {%- else %}
        cast(null as {{ type }}) as {{ name }},
        {%- endif %}
        {%- endfor %}
        cast(null as {{ dbt.type_string() }}) as list_name,
        cast(null as {{ dbt.type_int() }}) as list_row_number,
        load_id,
        file_path,
        line_number,
        loaded_at,
        built_at as staged_at

    from {{ ref(model) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

contact_records as (

    select
        record_id as message_id,
        'contacts' as source,
        'contact' as message_type,
        event_at,
        event_at_status,
        cast(null as timestamp) as sent_timestamp_at,
        cast(null as timestamp) as original_timestamp_at,
        cast(null as timestamp) as sent_at,
        cast(null as timestamp) as received_at,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        cast(null as {{ dbt.type_string() }}) as user_id,
        email as contact_email,
        phone as contact_phone,
        cast(null as {{ type_json() }}) as context,
        list_name as event_name,
        cast(null as {{ dbt.type_string() }}) as previous_id,
        cast(null as {{ dbt.type_string() }}) as group_id,
        cast(null as {{ type_json() }}) as properties,
        traits,
        cast(null as {{ type_json() }}) as group_traits,
        list_name,
        list_row_number,
        load_id,
        file_path,
        line_number,
        loaded_at,
        -- a table rebuilt whole by each build that builds this view: every record is staged anew
        {{ build_timestamp() }} as staged_at

    from {{ ref('stg_contacts__records') }}

),

{%- if var('landing_sources', {}) %}

-- The registered landing sources (vars: landing_sources), each through its stg_<name>__events.
landing_source_messages as (
    {{ landing_source_messages() }}
),
{%- endif %}

unioned as (

    select * from segment_messages
    union all
    select * from contact_records
    {%- if var('landing_sources', {}) %}
    union all
    select * from landing_source_messages
    {%- endif %}

)

select * from unioned
