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
        coalesce(
            {%- for column in var('contact_timestamp_columns') %}
            {{ parse_timestamp(json_get_string('traits', '$.' ~ column)) }},
            {%- endfor %}
            loaded_at
        ) as event_at,
        load_id,
        file_path,
        line_number,
        loaded_at

    from latest_version

)

select * from renamed
