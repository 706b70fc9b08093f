{#- dbt's cast and safe_cast where an engine's own falls short: found first through `dispatch` in
    dbt_project.yml (search order identity_warehouse, dbt). -#}

{#- dbt's safe_cast ("null when the value does not convert") is a plain cast on DuckDB (dbt-duckdb
    has none of its own): one property 'N/A' where a number is expected failed a whole trait model
    and every model after it. try_cast gives the null the name promises, as Spark's cast does
    (outside ANSI mode). -#}
{% macro duckdb__safe_cast(field, type) -%}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}

{#- Type names: Spark has no `json` (JSON is text) and no bare `varchar`. Contracts (the YAML's
    data_type) and the generated models go through this. -#}
{% macro spark__cast(field, type) -%}
    cast({{ field }} as {{ spark_type(type) }})
{%- endmacro %}

{% macro spark_type(type) -%}
    {%- set name = type | string | trim | lower -%}
    {{- {'json': 'string', 'varchar': 'string', 'text': 'string', 'integer': 'int'}.get(name, type) -}}
{%- endmacro %}
