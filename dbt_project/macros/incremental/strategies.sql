{#- The project's incremental strategies: `replace_keys` (every engine) and, on Spark, `delete+insert`. -#}

{#- The `replace_keys` incremental strategy: delete+insert, where a build can also name a key without
    giving it rows. A build row whose `key_only_when_null` column is null only names its key: every
    row of the table with a key the build names is deleted, then the build's other rows are
    inserted. A key's rows can so be replaced by fewer or none (int_identifiers: a message re-read
    may carry no identifier now, or be gone). A key-only row whose key is null names every key: the
    build replaces the whole table without comparing keys (a model rebuilt under other rules, or
    one that reads its previous state and writes every row: int_identity_components,
    int_profile_ids). Spark's version is dbt_spark_get_incremental_sql, below. -#}
{% macro get_incremental_replace_keys_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set keys = [arg_dict['unique_key']] if arg_dict['unique_key'] is string else arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set log = replaced_rows_statements(target, source, keys) %}
    {%- if log %}
    {{ log | join(';\n    ') }};
    {%- endif %}
    delete from {{ target }} where exists ({{ replace_keys_everything(source, keys) }});
    delete from {{ target }} as replaced using {{ source }} as build
    where {% for key in keys %}build.{{ key }} = replaced.{{ key }}{{ " and " if not loop.last }}{% endfor %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }} where {{ config.require('key_only_when_null') }} is not null
{% endmacro %}

{#- With `log_replaced_columns` in a replace_keys model's config, each build also keeps these columns
    of the rows it replaces (not when it replaces every row), stamped `replaced_at`, in
    `<model>__replaced` (replaced_rows_relation), until the last model to read them empties it
    (int_identifiers' replaced rows, read by int_identity_conflicts and int_identity_nodes:
    macros/incremental/identifier_rows.sql). The statements that do it, before the rows are
    replaced; none without the config. -#}
{% macro replaced_rows_statements(relation, build, keys) %}
    {%- set columns = config.get('log_replaced_columns') -%}
    {%- if not columns -%}{{ return([]) }}{%- endif -%}
    {%- set log = replaced_rows_relation(relation) -%}
    {%- set selected = "select " ~ columns | join(', ') ~ ", " ~ build_timestamp() ~ " as replaced_at from " ~ relation
                       ~ " as replaced" -%}
    {%- set matches = [] -%}
    {%- for key in keys -%}{%- do matches.append('build.' ~ key ~ ' = replaced.' ~ key) -%}{%- endfor -%}
    {{ return([
        "create table if not exists " ~ log ~ (" using " ~ (config.get('file_format') or 'parquet') if target.type == 'spark' else "")
            ~ " as " ~ selected ~ " where 1 = 0",
        "insert into " ~ log ~ " " ~ selected ~ " where exists (select 1 from " ~ build ~ " as build where "
            ~ matches | join(' and ') ~ ") and not exists (" ~ replace_keys_everything(build, keys) ~ ")",
    ]) }}
{% endmacro %}

{% macro replaced_rows_relation(relation) %}
    {{ return(relation.incorporate(path={"identifier": relation.identifier ~ '__replaced'})) }}
{% endmacro %}

{#- The build's key-only row with a null key, if any: it names every key. -#}
{% macro replace_keys_everything(build, keys) -%}
    select 1 from {{ build }}
    where {{ config.require('key_only_when_null') }} is null
        {%- for key in keys %} and {{ key }} is null{% endfor %}
{%- endmacro %}

{#- The select list of a key-only row: `key` (an SQL expression, or a list of them for a key of
    several columns; 'null' names every key) as the first of `columns`, null as the others. -#}
{% macro key_only_columns(columns, key) -%}
    {%- set keys = [key] if key is string else key -%}
    {%- for column in columns %}
    {{ keys[loop.index0] if loop.index0 < keys | length else 'null' }} as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The `delete+insert` and `replace_keys` incremental strategies on Spark, for tables without DELETE
    (Parquet): the models that use them (the Segment staging models, int_identifiers,
    int_profile_ids, profile_merges) keep their DuckDB configuration. The rows of the build replace
    the rows with the same unique key; the other rows stay (`replace_keys`: the build's key-only
    rows, see get_incremental_replace_keys_sql above, are not inserted). Spark cannot
    overwrite a table its query reads, so the rows kept and the new rows are written to two working
    tables first, then the table is overwritten from them. (On Delta, the
    `merge` strategy does the same in one statement.) The build's rows are already a table:
    spark__create_temporary_view, below, wrote them.

    These two macros replace dbt-spark's of the same name (a project's macros come first); every
    other strategy goes on to dbt-spark's own. -#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
    {%- if raw_strategy in spark_project_strategies() -%}
        {%- if not config.get('unique_key') -%}
            {{ exceptions.raise_compiler_error(raw_strategy ~ " needs a unique_key") }}
        {%- endif -%}
        {{ return(raw_strategy) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{% endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
    {%- if strategy not in spark_project_strategies() -%}
        {{ return(dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set new_rows = spark_new_rows(target) -%}
    {%- set kept_rows = target.incorporate(path={"identifier": target.identifier ~ '__dbt_kept'}) -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
    {%- set file_format = config.get('file_format') or 'parquet' -%}
    {%- set matches = [] -%}
    {%- for key in keys -%}{%- do matches.append('n.' ~ key ~ ' = t.' ~ key) -%}{%- endfor -%}
    {%- for statement in replaced_rows_statements(target, new_rows, keys) -%}{%- do run_query(statement) -%}{%- endfor -%}
    {%- do run_query("drop table if exists " ~ kept_rows) -%}
    {%- set everything = " and not exists (" ~ replace_keys_everything(new_rows, keys) ~ ")" if strategy == 'replace_keys' else "" -%}
    {%- do run_query("create table " ~ kept_rows ~ " using " ~ file_format ~ " as select " ~ columns ~ " from " ~ target
                     ~ " as t where not exists (select 1 from " ~ new_rows ~ " as n where " ~ matches | join(' and ') ~ ")"
                     ~ everything) -%}
    {%- set inserted = " where " ~ config.require('key_only_when_null') ~ " is not null" if strategy == 'replace_keys' else "" -%}
    {%- do run_query("insert overwrite table " ~ target ~ " select " ~ columns ~ " from " ~ kept_rows
                     ~ " union all select " ~ columns ~ " from " ~ new_rows ~ inserted) -%}
    {%- do run_query("drop table if exists " ~ kept_rows) -%}
    {{ return("drop table if exists " ~ new_rows) }}
{% endmacro %}

{#- dbt-spark's incremental materialization first makes the build's rows a temporary view
    (`<model>__dbt_tmp`), which Spark analyses when it is created, with every CTE copied into each
    place that reads it, and analyses again when the rows are written from it: 2-5 s a model on the
    sample. For the two strategies above the rows are written once, as the table `<model>__dbt_new`,
    and the view only reads that table (dbt-spark reads the new columns from it). Every other
    strategy keeps dbt-spark's view. -#}
{% macro spark__create_temporary_view(relation, compiled_code) %}
    {%- if config.get('incremental_strategy') not in spark_project_strategies() -%}
        {{ return(dbt.spark__create_temporary_view(relation, compiled_code)) }}
    {%- endif -%}
    {%- set new_rows = spark_new_rows(this) -%}
    {%- do run_query("drop table if exists " ~ new_rows) -%}
    {%- do run_query("create table " ~ new_rows ~ " using " ~ (config.get('file_format') or 'parquet') ~ " as\n" ~ compiled_code) -%}
    create or replace temporary view {{ relation }} as select * from {{ new_rows }}
{% endmacro %}

{#- The strategies this file implements on Spark; every other goes on to dbt-spark's own. -#}
{% macro spark_project_strategies() %}
    {{ return(['delete+insert', 'replace_keys']) }}
{% endmacro %}

{#- Where the Spark strategies above keep a build's rows. -#}
{% macro spark_new_rows(target) %}
    {{ return(target.incorporate(path={"identifier": target.identifier ~ '__dbt_new'})) }}
{% endmacro %}
