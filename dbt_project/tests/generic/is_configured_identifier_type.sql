{#- Every value is an identifier type declared in the identity rules (custom types included). -#}
{% test is_configured_identifier_type(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} not in (
        {%- for type in identifier_types() %}'{{ type }}'{{ ", " if not loop.last }}{% endfor -%}
    )
{% endtest %}
