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
