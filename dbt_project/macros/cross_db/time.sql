{#- ISO-8601 text (any offset) → UTC timestamp without time zone; null when it does not parse. -#}
{% macro parse_timestamp(expr) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'identity_warehouse')(expr)) }}
{%- endmacro %}

{% macro default__parse_timestamp(expr) -%}
    (try_cast({{ expr }} as timestamptz) at time zone 'UTC')
{%- endmacro %}

{% macro spark__parse_timestamp(expr) -%}
    to_utc_timestamp(try_cast({{ expr }} as timestamp), current_timezone())
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
