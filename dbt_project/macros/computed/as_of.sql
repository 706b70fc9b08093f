{#- The time computed traits and audiences are computed at: the `as_of` var (a backfill, a test)
    or now. Windows ("within the last N days") count back from it; later events are ignored.
    The var reaches SQL as a literal: only a date or timestamp is accepted. -#}
{% macro as_of() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?)?', value | string) -%}
            {{ exceptions.raise_compiler_error("as_of must be a date or timestamp such as 2024-06-01 or 2024-06-01T09:30:00") }}
        {%- endif -%}
        cast('{{ value }}' as timestamp)
    {%- else -%}
        cast({{ dbt.current_timestamp() }} as timestamp)
    {%- endif -%}
{%- endmacro %}
