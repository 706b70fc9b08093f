{#- A JSON object from (key, SQL expression) pairs; keys whose value is null are left out.
    A pair may have a third item, 'json', when its expression is JSON already (embedded as it is,
    not as a string). -#}
{% macro json_object_of(pairs) -%}
    {{ return(adapter.dispatch('json_object_of', 'identity_warehouse')(pairs)) }}
{%- endmacro %}

{% macro default__json_object_of(pairs) -%}
    json_merge_patch('{}', json_object(
        {%- for pair in pairs %}'{{ pair[0] }}', {{ pair[1] }}{{ ", " if not loop.last }}{% endfor -%}
    ))
{%- endmacro %}

{#- Spark: written as text, in the order of the pairs (as DuckDB's json_merge_patch keeps them). -#}
{% macro spark__json_object_of(pairs) -%}
    concat('{', concat_ws(','
        {%- for pair in pairs %},
        {%- if pair | length > 2 and pair[2] == 'json' %}
        case when {{ pair[1] }} is not null and {{ pair[1] }} <> 'null' then concat('"{{ pair[0] }}":', {{ pair[1] }}) end
        {%- else %}
        case when {{ pair[1] }} is not null then concat('"{{ pair[0] }}":', {{ spark_json_quote('cast(' ~ pair[1] ~ ' as string)') }}) end
        {%- endif %}
        {%- endfor %}), '}')
{%- endmacro %}
