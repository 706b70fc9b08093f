{#- Models land in the schema named in dbt_project.yml (staging, intermediate, marts), not in
    '<target schema>_<custom schema>': analysts query `marts.profiles`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
