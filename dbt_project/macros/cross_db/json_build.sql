{#- A JSON object from (key, SQL expression) pairs; keys whose value is null are left out. -#}
{% macro json_object_of(pairs) -%}
    {{ return(adapter.dispatch('json_object_of', 'identity_warehouse')(pairs)) }}
{%- endmacro %}

{% macro default__json_object_of(pairs) -%}
    json_merge_patch('{}', json_object(
        {%- for key, expression in pairs %}'{{ key }}', {{ expression }}{{ ", " if not loop.last }}{% endfor -%}
    ))
{%- endmacro %}

{% macro spark__json_object_of(pairs) -%}
    to_json(named_struct(
        {%- for key, expression in pairs %}'{{ key }}', {{ expression }}{{ ", " if not loop.last }}{% endfor -%}
    ))
{%- endmacro %}
