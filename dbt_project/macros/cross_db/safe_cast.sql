{#- dbt's safe_cast ("null when the value does not convert") is a plain cast on DuckDB (dbt-duckdb
    has none of its own): one property 'N/A' where a number is expected failed a whole trait model
    and every model after it. try_cast gives the null the name promises, as Spark's cast does
    (outside ANSI mode). Found first through `dispatch` in dbt_project.yml. -#}
{% macro duckdb__safe_cast(field, type) -%}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}
