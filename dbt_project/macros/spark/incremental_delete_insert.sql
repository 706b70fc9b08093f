{#- The `delete+insert` and `replace_keys` incremental strategies on Spark, for tables without DELETE
    (Parquet): the models that use them (the Segment staging models, int_identifiers,
    int_profile_ids, profile_merges) keep their DuckDB configuration. The rows of the build replace
    the rows with the same unique key; the other rows stay (`replace_keys`: the build's key-only
    rows, see macros/cross_db/incremental_replace_keys.sql, are not inserted). Spark cannot
    overwrite a table its query reads, so the rows kept and the new rows are written to two working
    tables first, then the table is overwritten from them. (On Delta, the
    `merge` strategy does the same in one statement.)

    These two macros replace dbt-spark's of the same name (a project's macros come first); every
    other strategy goes on to dbt-spark's own. -#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
    {%- if raw_strategy in ['delete+insert', 'replace_keys'] -%}
        {%- if not config.get('unique_key') -%}
            {{ exceptions.raise_compiler_error(raw_strategy ~ " needs a unique_key") }}
        {%- endif -%}
        {{ return(raw_strategy) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{% endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
    {%- if strategy not in ['delete+insert', 'replace_keys'] -%}
        {{ return(dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set new_rows = target.incorporate(path={"identifier": target.identifier ~ '__dbt_new'}) -%}
    {%- set kept_rows = target.incorporate(path={"identifier": target.identifier ~ '__dbt_kept'}) -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
    {%- set file_format = config.get('file_format') or 'parquet' -%}
    {%- set matches = [] -%}
    {%- for key in keys -%}{%- do matches.append('n.' ~ key ~ ' = t.' ~ key) -%}{%- endfor -%}
    {%- do run_query("drop table if exists " ~ new_rows) -%}
    {%- do run_query("drop table if exists " ~ kept_rows) -%}
    {%- do run_query("create table " ~ new_rows ~ " using " ~ file_format ~ " as select " ~ columns ~ " from " ~ source) -%}
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
