{#- Times: parsing event times, judging them plausible, and dbt's date arithmetic on Spark. -#}

{#- ISO-8601 text (any offset) → UTC timestamp without time zone; null when it does not parse. -#}
{% macro parse_timestamp(expr) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'identity_warehouse')(expr)) }}
{%- endmacro %}

{% macro default__parse_timestamp(expr) -%}
    (try_cast({{ expr }} as timestamptz) at time zone 'UTC')
{%- endmacro %}

{#- Spark: only the shapes DuckDB reads (ISO dates and times, an optional `Z` or numeric offset),
    so that both engines read the same values; a time without seconds gets them. -#}
{% macro spark__parse_timestamp(expr) -%}
    case when {{ expr }} rlike '^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
        then to_utc_timestamp(try_cast(regexp_replace({{ expr }}, '([T ][0-9]{1,2}:[0-9]{2})(Z|[+-]|$)', '$1:00$2') as timestamp), current_timezone())
    end
{%- endmacro %}

{#- dbt's dateadd and datediff on Spark, where dbt-spark's lose precision: found first through
    `dispatch` in dbt_project.yml (search order identity_warehouse, dbt). DuckDB keeps dbt-duckdb's. -#}

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

{#- Segment's clock-skew correction: the device clock may be wrong, so shift the event by the time the
    device thought passed between the event and sending it, counted back from when the server got it:
    timestamp = receivedAt - (sentAt - originalTimestamp). -#}
{% macro correct_clock_skew(original_timestamp, sent_at, received_at) -%}
    {{ dbt.dateadd(
        'millisecond',
        '-1 * ' ~ dbt.datediff(original_timestamp, sent_at, 'millisecond'),
        received_at
    ) }}
{%- endmacro %}

{#- The time of this dbt invocation (UTC, to the microsecond), the same in every model it builds:
    incremental models compare it across builds to find what changed since they last read. -#}
{% macro build_timestamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{#- Event times outside `vars: plausible_event_years` ([first year, last year]) are not taken as
    real: a device clock at 0001 or 9999, JavaScript's largest date (275760) would otherwise stand
    as when the event happened. `parsed`: a timestamp (from parse_timestamp). -#}
{% macro plausible_event_time_bounds() -%}
    {%- set years = var('plausible_event_years', [1990, 2100]) -%}
    {{ return(["cast('" ~ '%04d' % (years[0] | int) ~ "-01-01' as timestamp)",
               "cast('" ~ '%04d' % (years[1] | int + 1) ~ "-01-01' as timestamp)"]) }}
{%- endmacro %}

{% macro is_plausible_event_time(parsed) -%}
    {%- set bounds = plausible_event_time_bounds() -%}
    ({{ parsed }} >= {{ bounds[0] }} and {{ parsed }} < {{ bounds[1] }})
{%- endmacro %}

{#- The parsed time when it is plausible, else null (the next time in line is used instead). -#}
{% macro plausible_event_time(parsed) -%}
    case when {{ is_plausible_event_time(parsed) }} then {{ parsed }} end
{%- endmacro %}

{#- Whether the times a record gave can be used: 'unparsable' when one of them is not a time
    parse_timestamp reads ('not a date', '2024-13-45'), else 'out_of_range' when one is outside
    plausible_event_years, else 'ok' (a record that gives no time at all is 'ok': its event_at is
    the load time). `times`: [[text expression, its parse_timestamp expression], ...]. A year of
    five digits or a sign is out of range on every engine (DuckDB reads 275760-09-13, Spark does not). -#}
{% macro event_time_status(times) -%}
    {%- if not times %}'ok'{% else -%}
    case
        {%- for text, parsed in times %}
        when {{ parsed }} is null and nullif(trim({{ text }}), '') is not null
            and not {{ regex_matches(text, string_literal('^[[:space:]]*([+-][0-9]+|[0-9]{5,})-')) }} then 'unparsable'
        {%- endfor %}
        {%- for text, parsed in times %}
        when {{ parsed }} is not null and not {{ is_plausible_event_time(parsed) }} then 'out_of_range'
        -- (the texts that parsed never reach the regular expression)
        when {{ parsed }} is null and {{ regex_matches(text, string_literal('^[[:space:]]*([+-][0-9]+|[0-9]{5,})-')) }} then 'out_of_range'
        {%- endfor %}
        else 'ok'
    end
    {%- endif %}
{%- endmacro %}
