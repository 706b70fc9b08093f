{#- The time computed traits and audiences are computed at: the `as_of` var (a backfill, a test)
    or now. Windows ("within the last N days") count back from it; later events are ignored. -#}
{% macro as_of() -%}
    {%- if var('as_of', none) -%}
        cast('{{ var("as_of") }}' as timestamp)
    {%- else -%}
        cast({{ dbt.current_timestamp() }} as timestamp)
    {%- endif -%}
{%- endmacro %}
