{#- De-duplication without QUALIFY or EXCLUDE on every engine. -#}

{#- Keep one row per `partition_by`: the first in `order_by`. Portable (no QUALIFY). `where`: only
    the rows of `relation` it holds for. -#}
{% macro deduplicate(relation, partition_by, order_by, where=none) -%}
    select * {{ exclude_columns(['dedup_rank']) }}
    from (
        select
            *,
            row_number() over (partition by {{ partition_by }} order by {{ order_by }}) as dedup_rank
        from {{ relation }}
        {%- if where %}
        where {{ where }}
        {%- endif %}
    ) as ranked
    where dedup_rank = 1
{%- endmacro %}

{#- deduplicate(), where the boolean column `flag` says which rows have copies: only those are ranked,
    the others pass as they are (and `flag` is dropped). Spark has no EXCLUDE: there it is
    deduplicate() over every row, and `flag` is left in place, as dedup_rank is. -#}
{% macro deduplicate_flagged(relation, flag, partition_by, order_by) -%}
    {{ return(adapter.dispatch('deduplicate_flagged', 'identity_warehouse')(relation, flag, partition_by, order_by)) }}
{%- endmacro %}

{% macro default__deduplicate_flagged(relation, flag, partition_by, order_by) -%}
    select * exclude ({{ flag }}) from {{ relation }} where not {{ flag }}

    union all

    select * exclude ({{ flag }})
    from ({{ deduplicate(relation, partition_by, order_by, where=flag) }}) as copies
{%- endmacro %}

{% macro spark__deduplicate_flagged(relation, flag, partition_by, order_by) -%}
    {{ deduplicate(relation, partition_by, order_by) }}
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
