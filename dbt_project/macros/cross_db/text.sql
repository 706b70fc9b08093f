{#- `expr` without the spaces around it, as trim() has it. DuckDB's trim() looks for Unicode spaces in
    every value (0.9 s per 15 M identifiers of about 30 characters, five times over in
    int_identifiers; on words of a few letters trim() is the cheaper); a value that starts and ends
    with printable ASCII has none to lose, so it is taken as it is. `expr` is written three times:
    pass a column or a parameter, not a computation. -#}
{% macro trim_text(expr) -%}
    {{ return(adapter.dispatch('trim_text', 'identity_warehouse')(expr)) }}
{%- endmacro %}

{% macro default__trim_text(expr) -%}
    (case when ({{ expr }})[1] between '!' and '~' and ({{ expr }})[-1] between '!' and '~' then {{ expr }} else trim({{ expr }}) end)
{%- endmacro %}

{% macro spark__trim_text(expr) -%}
    trim({{ expr }})
{%- endmacro %}

{#- Regular expressions (RE2 syntax in DuckDB, Java syntax in Spark: keep patterns to the common part).
    `pattern` is a SQL string: write it with string_literal(). -#}

{% macro regex_matches(expr, pattern) -%}
    {{ return(adapter.dispatch('regex_matches', 'identity_warehouse')(expr, pattern)) }}
{%- endmacro %}

{% macro default__regex_matches(expr, pattern) -%}
    regexp_matches({{ expr }}, {{ pattern }})
{%- endmacro %}

{% macro spark__regex_matches(expr, pattern) -%}
    ({{ expr }} rlike {{ spark_regex(pattern) }})
{%- endmacro %}

{#- Replace every match. -#}
{% macro regex_replace_all(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('regex_replace_all', 'identity_warehouse')(expr, pattern, replacement)) }}
{%- endmacro %}

{% macro default__regex_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, {{ pattern }}, {{ replacement }}, 'g')
{%- endmacro %}

{% macro spark__regex_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, {{ spark_regex(pattern) }}, {{ replacement }})
{%- endmacro %}

{#- Java has no POSIX bracket classes: `[:space:]` inside a set is `\s` (the same characters). -#}
{% macro spark_regex(pattern) -%}
    {{ pattern | replace('[:space:]', '\\\\s') }}
{%- endmacro %}

{#- A SQL string literal holding `text` exactly. Standard SQL doubles quotes; Spark reads
    backslash escapes in literals (and two quoted literals side by side as one), so it escapes
    backslashes and quotes with a backslash. -#}
{% macro string_literal(text) -%}
    {{ return(adapter.dispatch('string_literal', 'identity_warehouse')(text)) }}
{%- endmacro %}

{% macro default__string_literal(text) -%}
    '{{ text | string | replace("'", "''") }}'
{%- endmacro %}

{% macro spark__string_literal(text) -%}
    '{{ text | string | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}
