{#- The input of a dbt unit test (its `given` rows). dbt writes it as one `select` per row joined by
    `union all`. Spark copies a CTE into every place a query reads it, and analyses and optimises each
    copy: a model that reads its input ten times (int_identity_conflicts) got 400 selects of 14 casts,
    and each of its unit tests took 50 s on Spark. There the rows are one inline table (`values`), one
    node wherever it is copied; the same rows, types and names. Elsewhere dbt's own. -#}
{% macro get_fixture_sql(rows, column_name_to_data_types) %}
    {{- return(adapter.dispatch('get_fixture_sql', 'identity_warehouse')(rows, column_name_to_data_types)) -}}
{% endmacro %}

{% macro default__get_fixture_sql(rows, column_name_to_data_types) %}
    {{- return(dbt.get_fixture_sql(rows, column_name_to_data_types)) -}}
{% endmacro %}

{% macro spark__get_fixture_sql(rows, column_name_to_data_types) %}
{%- if (rows | length) < 2 -%}
    {{- return(dbt.get_fixture_sql(rows, column_name_to_data_types)) -}}  {#- nothing to gain -#}
{%- endif -%}
{#- The input's columns and types, read from its relation as dbt's does (dbt passes none) -#}
{%- set relation = defer_relation if (defer_relation and not load_relation(this)) else this -%}
{%- set types, quoted = {}, {} -%}
{%- for column in adapter.get_columns_in_relation(relation) -%}
    {%- do types.update({column.name | lower: column.data_type}) -%}
    {%- do quoted.update({column.name | lower: column.quoted}) -%}
{%- endfor -%}
{%- if not types -%}
    {{ exceptions.raise_compiler_error("Not able to get columns for unit test '" ~ model.name ~ "' from relation " ~ relation ~ " because the relation doesn't exist") }}
{%- endif -%}
{{- validate_fixture_rows(rows, row_number) -}}
-- Fixture for {{ model.name }}
select * from values
{%- for row in rows %}
{%-   set formatted = format_row(row, types) %}
    ({%- for column, type in types.items() -%}
        {{ formatted.get(column, safe_cast('null', type) | trim) }}{{ ', ' if not loop.last }}
    {%- endfor -%}){{ ',' if not loop.last }}
{%- endfor %}
as fixture ({%- for column in types -%}{{ quoted[column] }}{{ ', ' if not loop.last }}{%- endfor -%})
{% endmacro %}
