{#- The text of the first non-null scalar at `path` in a JSON document held as text (`json_expr`),
    where `path` may hold one `[*]` (any element of an array): what `add-source` writes for an
    identifier inside a CSV cell's JSON or an array (`contexts[*].userId`). Without `[*]` it is
    json_get_string. -#}
{% macro json_first_string(json_expr, path) -%}
    {{ return(adapter.dispatch('json_first_string', 'identity_warehouse')(json_expr, path)) }}
{%- endmacro %}

{#- DuckDB: a path with `[*]` gives a list of the matches. -#}
{% macro default__json_first_string(json_expr, path) -%}
    {%- if '[*]' in path -%}
    list_filter(json_extract_string({{ json_expr }}, '{{ path }}'), lambda v: v is not null)[1]
    {%- else -%}
    {{ json_get_string(json_expr, path) }}
    {%- endif -%}
{%- endmacro %}

{#- Spark: the array (its elements as JSON text) read by from_json, the rest of the path read in
    each element, the first non-null kept. One `[*]` per path. -#}
{% macro spark__json_first_string(json_expr, path) -%}
    {%- if '[*]' in path -%}
    {%- set before, after = path.split('[*]', 1) -%}
    {%- if '[*]' in after -%}
    {{ exceptions.raise_compiler_error("json_first_string: one [*] per path on Spark, got " ~ path) }}
    {%- endif -%}
    try_element_at(filter(transform(
        from_json({{ json_get_string(json_expr, before) if before != '$' else json_expr }}, 'array<string>'),
        element -> {{ json_get_string('element', '$' ~ after) if after else 'element' }}),
        value -> value is not null), 1)
    {%- else -%}
    {{ json_get_string(json_expr, path) }}
    {%- endif -%}
{%- endmacro %}
