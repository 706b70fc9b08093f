{#- Tables into and out of the `spark` target as Parquet files, and their row counts: operations that
    orchestration/spark/build.py runs through dbt, so they use the profile's connection (a local session, a
    Thrift server or Databricks alike). -#}

{#- The raw tables from Parquet files (the DuckDB landing tables exported by `identity-warehouse
    run --target spark`), typed as the ingestion declares them:

        dbt run-operation land_raw_tables --target spark --args '{schema: raw, tables: [{name: tracks,
            path: /tmp/x/tracks.parquet, columns: [[message_id, string], ...]}]}'

    Each table is replaced by a managed table holding a copy of its file's rows. -#}
{% macro land_raw_tables(tables, schema='raw') %}
    {%- do run_query("create database if not exists " ~ schema) -%}
    {%- for table in tables -%}
        {%- set relation = schema ~ "." ~ table['name'] -%}
        {%- set columns = [] -%}
        {%- for name, type in table['columns'] -%}
            {%- do columns.append("cast(`" ~ name ~ "` as " ~ type ~ ") as `" ~ name ~ "`") -%}
        {%- endfor -%}
        {%- do run_query("drop table if exists " ~ relation) -%}
        {%- do run_query("create table " ~ relation ~ " using " ~ var('spark_file_format', 'parquet') ~ " as select "
                         ~ columns | join(', ') ~ " from parquet.`" ~ table['path'] ~ "`") -%}
        {%- do print("landed " ~ relation) -%}
    {%- endfor -%}
{% endmacro %}

{#- Every table of the schemas, written as Parquet under `out_dir/<schema>/<table>/`: the
    equivalence test and `identity-warehouse run --target spark` read them from there. -#}
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

{#- One line of JSON: the number of rows of each relation (`schema.table`). -#}
{% macro count_rows(relations) %}
    {%- set counts = {} -%}
    {%- for relation in relations -%}
        {%- do counts.update({relation: run_query("select count(*) from " ~ relation).columns[0].values()[0] | int}) -%}
    {%- endfor -%}
    {%- do print("row_counts " ~ tojson(counts)) -%}
{% endmacro %}
