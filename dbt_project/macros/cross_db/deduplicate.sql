{#- De-duplication without QUALIFY or EXCLUDE on every engine. -#}

{#- Keep one row per `partition_by`: the first in `order_by`. Portable (no QUALIFY). -#}
{% macro deduplicate(relation, partition_by, order_by) -%}
    select * {{ exclude_columns(['dedup_rank']) }}
    from (
        select
            *,
            row_number() over (partition by {{ partition_by }} order by {{ order_by }}) as dedup_rank
        from {{ relation }}
    ) as ranked
    where dedup_rank = 1
{%- endmacro %}

{#- `exclude (...)` for `select *`, where the engine has it. -#}
{% macro exclude_columns(columns) -%}
    {{ return(adapter.dispatch('exclude_columns', 'identity_warehouse')(columns)) }}
{%- endmacro %}

{% macro default__exclude_columns(columns) -%}
    exclude ({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__exclude_columns(columns) -%}
    {#- Spark has no EXCLUDE: the rank column is left in place and ignored by callers. -#}
{%- endmacro %}
