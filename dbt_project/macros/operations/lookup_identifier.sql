{#- Which profiles hold an identifier given as a person would type it:

        dbt run-operation lookup_identifier --args '{value: "(415) 555-0103"}'

    The value is normalised by every identifier type's rule (an e-mail in any case, a phone as typed,
    an id trimmed) and also matched as it was sent, so any identifier finds its profile. Prints one
    JSON object {"value", "matches": [{identifier_type, identifier_value, profile_id}]}: the lookup
    command reads it. -#}
{% macro lookup_identifier(value, type=none) %}
    {%- set rows = run_query(find_identifiers_sql(value, type)).rows -%}
    {%- set matches = [] -%}
    {%- for row in rows -%}
        {%- do matches.append({'identifier_type': row[0], 'identifier_value': row[1], 'profile_id': row[2]}) -%}
    {%- endfor -%}
    {%- do print(tojson({'value': value, 'matches': matches})) -%}
{% endmacro %}

{#- SQL: (identifier_type, identifier_value, profile_id) of the identifiers `value` may be, normalised
    the way int_identifiers normalises (one candidate per identifier type, or only `type`), or as sent.
    `type` must be an identifier type of the identity rules; the value and the type names reach the
    SQL only as string literals. `identity-warehouse lookup` runs the same SQL from Python
    (orchestration/people/lookup.py, find_identifiers_sql; the tests keep the two equal). -#}
{% macro find_identifiers_sql(value, type=none) %}
    {%- if type is not none and type not in identifier_types() -%}
        {{ exceptions.raise_compiler_error("unknown identifier type (use one of " ~ identifier_types().keys() | join(", ") ~ ")") }}
    {%- endif -%}
    {%- set literal = string_literal(value | string) -%}
    {%- set types = [type] if type is not none else identifier_types().keys() | list -%}
    {%- set candidates = [] -%}
    {%- for candidate_type in types -%}
        {%- do candidates.append("select " ~ string_literal(candidate_type) ~ " as identifier_type, "
            ~ normalize_identifier(string_literal(candidate_type), literal) ~ " as identifier_value") -%}
    {%- endfor -%}
    {{ return(
        "select distinct p.identifier_type, p.identifier_value, p.profile_id from " ~ ref('profile_identifiers') ~ " as p"
        ~ " where exists (select 1 from (" ~ candidates | join(" union all ") ~ ") as c"
        ~ " where c.identifier_type = p.identifier_type and c.identifier_value = p.identifier_value)"
        ~ " or exists (select 1 from " ~ ref('int_identifiers') ~ " as i where i.identifier_type = p.identifier_type"
        ~ " and i.identifier_value = p.identifier_value and lower(trim(i.raw_value)) = lower(trim(" ~ literal ~ "))"
        ~ (" and i.identifier_type = " ~ string_literal(type) if type is not none else "") ~ ")"
        ~ " order by p.identifier_type, p.identifier_value, p.profile_id") }}
{% endmacro %}
