{#- Fails (or warns, with severity: warn) when the model has any row: for tables that list problems. -#}
{% test has_no_rows(model) %}
    select * from {{ model }}
{% endtest %}
