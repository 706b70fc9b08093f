{#- Identifier normalisation, as docs/identity-resolution.md (1. Identifiers) documents it. -#}

{#- Ids: trimmed. -#}
{% macro normalize_id(expr) -%}
    {{ trim_text(expr) }}
{%- endmacro %}

{#- E-mails (and `lower` ids): trimmed and lower-cased. -#}
{% macro normalize_email(expr) -%}
    lower({{ trim_text(expr) }})
{%- endmacro %}

{#- Phones to E.164 ('+' and digits). An extension is dropped; '+' or an international prefix
    ('00', or '011' in the North American plan) keeps the country code that follows; a national
    number (with or without its trunk '0') gets the configured default country. Anything else is
    left unresolved (null) and reported as an invalid phone. -#}
{% macro normalize_phone(expr) -%}
    {%- set cc = identity_rules()['default_phone_country_code'] | string -%}
    {%- set national_length = identity_rules()['national_phone_number_length'] | int -%}
    {%- set without_extension = regex_replace_all(
            trim_text(expr), string_literal('(?i)\\s*(extension|ext\\.?|x|#)\\s*[0-9]+\\s*$'), "''") -%}
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

{#- The normalised value of an identifier, by its type's `normalize` rule. -#}
{% macro normalize_identifier(type_expr, value_expr) -%}
    case {{ type_expr }}
        {%- for type, rule in identifier_types().items() %}
        {%- set method = rule.get('normalize', 'id') %}
        when '{{ type }}' then
            {%- if method == 'email' or method == 'lower' %} {{ normalize_email(value_expr) }}
            {%- elif method == 'phone' %} {{ normalize_phone(value_expr) }}
            {%- elif method == 'id' %} {{ normalize_id(value_expr) }}
            {%- else %}{{ exceptions.raise_compiler_error("identity_rules: unknown normalize '" ~ method ~ "' for " ~ type) }}
            {%- endif %}
        {%- endfor %}
        else {{ normalize_id(value_expr) }}
    end
{%- endmacro %}

{% macro blocklist_conditions(raw_expr, blocklist) -%}
    {%- set values = blocklist.get('values', []) -%}
    {%- set conditions = [] -%}
    {%- if values -%}
        {%- set quoted = [] -%}
        {%- set lengths = [] -%}
        {%- for value in values %}
            {%- do quoted.append(string_literal(value | string | lower)) -%}
            {%- do lengths.append(value | string | lower | length) -%}
        {%- endfor -%}
        {#- A value longer than the longest listed one is not listed (lower() keeps or adds characters,
            never drops them): most identifiers skip lower() and the lookup. -#}
        {%- do conditions.append(("value", "(length(" ~ trim_text(raw_expr) ~ ") <= " ~ lengths | max ~ " and lower("
                                           ~ trim_text(raw_expr) ~ ") in (" ~ quoted | join(', ') ~ "))")) -%}
    {%- endif -%}
    {%- for pattern in blocklist.get('patterns', []) -%}
        {%- do conditions.append(("pattern", regex_matches(trim_text(raw_expr), string_literal(pattern)))) -%}
    {%- endfor -%}
    {{ return(conditions) }}
{%- endmacro %}

{#- Why an identifier must not link anyone, or null when it may: a blocklisted value or pattern
    (global or of its type), or a value its normaliser cannot make sense of. `raw_expr` is the value
    as sent, `value_expr` the normalised value. -#}
{% macro identifier_block_reason(type_expr, raw_expr, value_expr) -%}
    case
        when 1 = 0 then null
        {%- for kind, condition in blocklist_conditions(raw_expr, identity_rules().get('blocklist', {})) %}
        when {{ condition }} then 'blocklisted_{{ kind }}'
        {%- endfor %}
        {%- for type, rule in identifier_types().items() %}
        {%- for kind, condition in blocklist_conditions(raw_expr, rule.get('blocklist', {})) %}
        when {{ type_expr }} = '{{ type }}' and {{ condition }} then 'blocklisted_{{ kind }}'
        {%- endfor %}
        {%- set method = rule.get('normalize', 'id') %}
        {%- if method == 'email' %}
        when {{ type_expr }} = '{{ type }}'
            and not {{ regex_matches(value_expr, string_literal('^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$')) }}
            then 'invalid_email'
        {%- elif method == 'phone' %}
        when {{ type_expr }} = '{{ type }}'
            and ({{ value_expr }} is null or not {{ regex_matches(value_expr, string_literal('^\\+[1-9][0-9]{6,14}$')) }})
            then 'invalid_phone'
        {%- endif %}
        {%- endfor %}
    end
{%- endmacro %}
