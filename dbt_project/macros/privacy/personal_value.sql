{#- A personal value (an e-mail, a phone) in the profile marts: as it is, or, with the var
    `hash_pii_in_marts`, as the SHA-256 hex of the normalised value (the value is normalised
    already: trimmed lower-case e-mail, E.164 phone), the form ad platforms match on. -#}
{% macro personal_value(expr) -%}
    {%- if var('hash_pii_in_marts', false) | string | lower in ('true', '1', 'yes') -%}
        {{ sha256_hex(expr) }}
    {%- else -%}
        {{ expr }}
    {%- endif -%}
{%- endmacro %}
