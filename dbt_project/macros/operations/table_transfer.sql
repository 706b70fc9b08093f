{#- Operations on the `spark` target that orchestration/spark/build.py runs through dbt, so they use
    the profile's connection: the landing schema, tables out as Parquet files. -#}

{#- Makes sure the landing schema exists. Run first on the session method, it also starts dbt's
    Spark with the profile's settings: the landing (orchestration/spark/landing.py) runs in that Spark. -#}
{% macro create_landing_schema(schema='raw') %}
    {%- do run_query("create database if not exists " ~ schema) -%}
{% endmacro %}

{#- Every table of the schemas, written as Parquet under `out_dir/<schema>/<table>/`: the
    equivalence test reads them from there. -#}
{% macro export_schemas(schemas, out_dir) %}
    {%- for schema in schemas -%}
        {%- if adapter.check_schema_exists(none, schema) -%}
            {%- for row in run_query("show tables in " ~ schema).rows if not row[2] -%}
                {%- do run_query("insert overwrite directory '" ~ out_dir ~ "/" ~ schema ~ "/" ~ row[1]
                                 ~ "' using parquet select * from " ~ schema ~ "." ~ row[1]) -%}
                {%- do print("exported " ~ schema ~ "." ~ row[1]) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}
