{#- Spark versions of dbt's own cross-database macros, where dbt-spark's lose precision or do not
    parse: found first through `dispatch` in dbt_project.yml (search order identity_warehouse, dbt).
    DuckDB keeps dbt-duckdb's. -#}

{#- Exact to the microsecond (dbt-spark's goes through whole seconds, and its millisecond is wrong). -#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    {%- set micros = {'microsecond': 1, 'millisecond': 1000, 'second': 1000000, 'minute': 60000000,
                      'hour': 3600000000} -%}
    {%- set part = datepart | lower -%}
    {%- if part in micros -%}
        timestamp_micros(unix_micros(cast({{ from_date_or_timestamp }} as timestamp))
            + cast({{ interval }} as bigint) * {{ micros[part] }})
    {%- elif part in ('day', 'week', 'month', 'quarter', 'year') -%}
        {%- set unit, multiplier = {'day': ('DAY', 1), 'week': ('DAY', 7), 'month': ('MONTH', 1),
                                    'quarter': ('MONTH', 3), 'year': ('MONTH', 12)}[part] -%}
        timestampadd({{ unit }}, cast({{ interval }} as bigint) * {{ multiplier }}, cast({{ from_date_or_timestamp }} as timestamp))
    {%- else -%}
        {{ exceptions.raise_compiler_error("dateadd: unsupported datepart '" ~ datepart ~ "' on Spark") }}
    {%- endif -%}
{%- endmacro %}

{#- Boundaries crossed, as DuckDB's date_diff counts them (floor of each end, not of the difference). -#}
{% macro spark__datediff(first_date, second_date, datepart) -%}
    {%- set micros = {'microsecond': 1, 'millisecond': 1000, 'second': 1000000, 'minute': 60000000,
                      'hour': 3600000000} -%}
    {%- set part = datepart | lower -%}
    {%- if part in micros -%}
        ({{ spark_floor_div('unix_micros(cast(' ~ second_date ~ ' as timestamp))', micros[part]) }}
         - {{ spark_floor_div('unix_micros(cast(' ~ first_date ~ ' as timestamp))', micros[part]) }})
    {%- elif part == 'day' -%}
        datediff(cast({{ second_date }} as date), cast({{ first_date }} as date))
    {%- else -%}
        {{ exceptions.raise_compiler_error("datediff: unsupported datepart '" ~ datepart ~ "' on Spark") }}
    {%- endif -%}
{%- endmacro %}

{% macro spark_floor_div(expr, divisor) -%}
    (({{ expr }} - pmod({{ expr }}, {{ divisor }})) div {{ divisor }})
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
