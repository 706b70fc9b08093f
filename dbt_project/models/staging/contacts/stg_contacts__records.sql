{%- set times = [] -%}
{%- for column in var('contact_timestamp_columns') -%}
    {%- set text = json_get_string('traits', '$.' ~ column) -%}
    {%- do times.append([text, parse_timestamp(text)]) -%}
{%- endfor -%}
with

source as (

    select * from {{ source('contacts', 'contacts') }}

),

-- A list file replaced by a newer export (same path, new content): the newest load stands.
loads as (

    select
        load_id,
        row_number() over (partition by file_path order by loaded_at desc, load_id desc) as recency

    from (select distinct file_path, load_id, loaded_at from source) as loaded

),

latest_version as (

    select source.*
    from source
    join loads on loads.load_id = source.load_id and loads.recency = 1

),

renamed as (

    select
        'contact:' || list_name || ':' || cast(row_number as {{ dbt.type_string() }}) as record_id,
        list_name,
        row_number as list_row_number,
        email,
        phone,
        traits,
        -- the first of the columns that holds a plausible time (plausible_event_years), else the load time
        coalesce(
            {%- for text, parsed in times %}
            {{ plausible_event_time(parsed) }},
            {%- endfor %}
            loaded_at
        ) as event_at,
        {{ event_time_status(times) }} as event_at_status,
        load_id,
        file_path,
        line_number,
        loaded_at

    from latest_version

)

select * from renamed
