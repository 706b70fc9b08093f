{#- Statements run and written the same way on every engine: several in one call, `create table as`,
    materialized CTEs, a table replaced by a post-hook. -#}

{#- Runs SQL statements separated by `;` and a space or line break, and returns the result of the
    last one. DuckDB takes them in one call; Spark runs one statement per call. The statements must
    not hold `;` before a space or line break in a literal. -#}
{% macro run_statements(sql) %}
    {{ return(adapter.dispatch('run_statements', 'identity_warehouse')(sql)) }}
{% endmacro %}

{% macro default__run_statements(sql) %}
    {{ return(run_query(sql)) }}
{% endmacro %}

{% macro spark__run_statements(sql) %}
    {%- set statements = [] -%}
    {%- for statement in modules.re.split(';(?:\\s+|$)', sql | trim) if statement | trim -%}
        {%- do statements.append(statement) -%}
    {%- endfor -%}
    {%- for statement in statements[:-1] -%}
        {%- do run_query(statement) -%}
    {%- endfor -%}
    {{ return(run_query(statements[-1])) }}
{% endmacro %}

{#- `create table R as <select>`: Spark's default (without USING) is a Hive text table. -#}
{% macro create_table_as_select(relation, sql) %}
    {{ return(adapter.dispatch('create_table_as_select', 'identity_warehouse')(relation, sql)) }}
{% endmacro %}

{% macro default__create_table_as_select(relation, sql) %}
    {%- set create -%}
        create table {{ relation }} as {{ sql }}
    {%- endset -%}
    {{ return(create) }}
{% endmacro %}

{% macro spark__create_table_as_select(relation, sql) %}
    {%- set create -%}
        create table {{ relation }} using {{ var('spark_file_format', 'parquet') }} as {{ sql }}
    {%- endset -%}
    {{ return(create) }}
{% endmacro %}

{#- `with x as {{ materialized_cte() }} (...)`: a CTE that many branches read is computed once and kept
    (DuckDB and PostgreSQL take the keyword; Spark has none and plans the CTE itself). -#}
{% macro materialized_cte() %}
    {{- return(adapter.dispatch('materialized_cte', 'identity_warehouse')()) -}}
{% endmacro %}

{% macro default__materialized_cte() %}{{ return('materialized') }}{% endmacro %}

{% macro spark__materialized_cte() %}{{ return('') }}{% endmacro %}

{#- `with x as {{ unmaterialized_cte() }} (...)`: a CTE that only filters a table is read again by each
    of its readers, never copied. DuckDB keeps a CTE that several branches read, and a copy of every
    event or identifier outgrows memory and spills (at 5 M people, 3 GB). -#}
{% macro unmaterialized_cte() %}
    {{- return(adapter.dispatch('unmaterialized_cte', 'identity_warehouse')()) -}}
{% endmacro %}

{% macro default__unmaterialized_cte() %}{{ return('not materialized') }}{% endmacro %}

{% macro spark__unmaterialized_cte() %}{{ return('') }}{% endmacro %}

{#- A post-hook that makes `relation` the result of `sql`. Spark runs one statement per call: they
    are run here, and the hook itself is left empty. -#}
{% macro replace_table_hook(relation, sql) %}
    {{ return(adapter.dispatch('replace_table_hook', 'identity_warehouse')(relation, sql)) }}
{% endmacro %}

{% macro default__replace_table_hook(relation, sql) %}
    {{ return(cc_replace_table(relation, sql)) }}
{% endmacro %}

{% macro spark__replace_table_hook(relation, sql) %}
    {%- if execute -%}
        {%- do run_statements(cc_replace_table(relation, sql)) -%}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}
