{#- Identifier normalisation, as the contract in DESIGN.md defines it. -#}

{#- Ids (anonymous_id, user_id, previous_id): trimmed. -#}
{% macro normalize_id(expr) -%}
    trim({{ expr }})
{%- endmacro %}

{#- E-mails: trimmed and lower-cased. -#}
{% macro normalize_email(expr) -%}
    lower(trim({{ expr }}))
{%- endmacro %}

{#- Phones to E.164 ('+' and digits). An extension is dropped; '+' or an international prefix
    ('00', or '011' in the North American plan) keeps the country code that follows; a national
    number (with or without its trunk '0') gets the configured default country. Anything else is
    left unresolved (null) and reported as an invalid phone. -#}
{% macro normalize_phone(expr) -%}
    {%- set cc = var('default_phone_country_code') | string -%}
    {%- set national_length = var('national_phone_number_length') | int -%}
    {%- set without_extension = regex_replace_all(
            'trim(' ~ expr ~ ')', "'(?i)\\s*(extension|ext\\.?|x|#)\\s*[0-9]+\\s*$'", "''") -%}
    {%- set digits = regex_replace_all(without_extension, "'[^0-9]'", "''") -%}
    case
        when {{ digits }} = '' then null
        when {{ without_extension }} like '+%' then '+' || {{ digits }}
        when {{ digits }} like '00%' then '+' || substr({{ digits }}, 3)
        {%- if cc == '1' %}
        when {{ digits }} like '011%' then '+' || substr({{ digits }}, 4)
        {%- endif %}
        when length({{ digits }}) = {{ national_length }} then '+{{ cc }}' || {{ digits }}
        when {{ digits }} like '0%' and length({{ digits }}) = {{ national_length + 1 }}
            then '+{{ cc }}' || substr({{ digits }}, 2)
        when {{ digits }} like '{{ cc }}%' and length({{ digits }}) = {{ national_length + cc | length }}
            then '+' || {{ digits }}
    end
{%- endmacro %}

{% macro normalize_identifier(type_expr, value_expr) -%}
    case {{ type_expr }}
        when 'email' then {{ normalize_email(value_expr) }}
        when 'phone' then {{ normalize_phone(value_expr) }}
        else {{ normalize_id(value_expr) }}
    end
{%- endmacro %}

{#- Why an identifier must not link anyone, or null when it may. `raw_expr` is the value as sent,
    `value_expr` the normalised value. -#}
{% macro identifier_block_reason(type_expr, raw_expr, value_expr) -%}
    {%- set blocklist = var('identifier_blocklist') -%}
    case
        when lower(trim({{ raw_expr }})) in (
            {%- for value in blocklist %}'{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}
        ) then 'blocklisted_value'
        {%- for pattern in var('identifier_blocklist_patterns') %}
        when {{ regex_matches('trim(' ~ raw_expr ~ ')', "'" ~ pattern | replace("'", "''") ~ "'") }}
            then 'blocklisted_pattern'
        {%- endfor %}
        when {{ type_expr }} = 'email'
            and not {{ regex_matches(value_expr, "'^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$'") }}
            then 'invalid_email'
        when {{ type_expr }} = 'phone'
            and ({{ value_expr }} is null or not {{ regex_matches(value_expr, "'^\\+[1-9][0-9]{6,14}$'") }})
            then 'invalid_phone'
    end
{%- endmacro %}

{#- The identifier priority from the identity rules, as a SQL expression over a type column. -#}
{% macro identifier_priority(type_expr) -%}
    case {{ type_expr }}
        {%- for type, priority in var('identifier_priority').items() %}
        when '{{ type }}' then {{ priority }}
        {%- endfor %}
        else 99
    end
{%- endmacro %}
