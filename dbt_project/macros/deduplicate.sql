{#- Keep one row per `partition_by` (a column that is never null): the first in `order_by`.
    Only the keys that occur more than once go through the window: ranking every row sorts the
    whole rows, payloads and all, which at millions of rows costs minutes; most keys occur once
    (at-least-once delivery repeats a few messages). Portable (no QUALIFY). -#}
{% macro deduplicate(relation, partition_by, order_by) -%}
    {%- set repeated_keys -%}
        select {{ partition_by }} from {{ relation }} group by {{ partition_by }} having count(*) > 1
    {%- endset -%}
    select * {{ exclude_columns(['dedup_rank']) }}
    from (
        select *, 1 as dedup_rank
        from {{ relation }}
        where {{ partition_by }} not in ({{ repeated_keys }})

        union all

        select
            *,
            row_number() over (partition by {{ partition_by }} order by {{ order_by }}) as dedup_rank
        from {{ relation }}
        where {{ partition_by }} in ({{ repeated_keys }})
    ) as ranked
    where dedup_rank = 1
{%- endmacro %}

{% macro exclude_columns(columns) -%}
    {{ return(adapter.dispatch('exclude_columns', 'identity_warehouse')(columns)) }}
{%- endmacro %}

{% macro default__exclude_columns(columns) -%}
    exclude ({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__exclude_columns(columns) -%}
    {#- Spark has no EXCLUDE: the rank column is left in place and ignored by callers. -#}
{%- endmacro %}
