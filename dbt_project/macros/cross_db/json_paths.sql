{#- Several paths of one JSON document read at once. DuckDB parses the document once for all of
    them (instead of once per path); other engines read each path, as json_get_string does.
    `json_get_strings(json, ['$.a', '$.b'])` is a list of the texts at the paths (null where absent),
    `json_get_values` the same list of JSON values; `list_item(list, 1)` is the first item. -#}

{% macro json_get_strings(json_expr, paths) -%}
    {{ return(adapter.dispatch('json_get_strings', 'identity_warehouse')(json_expr, paths)) }}
{%- endmacro %}

{% macro default__json_get_strings(json_expr, paths) -%}
    json_extract_string({{ json_expr }}, [{{ json_path_literals(paths) }}])
{%- endmacro %}

{% macro spark__json_get_strings(json_expr, paths) -%}
    array({% for path in paths %}{{ json_get_string(json_expr, path) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro json_get_values(json_expr, paths) -%}
    {{ return(adapter.dispatch('json_get_values', 'identity_warehouse')(json_expr, paths)) }}
{%- endmacro %}

{% macro default__json_get_values(json_expr, paths) -%}
    json_extract({{ json_expr }}, [{{ json_path_literals(paths) }}])
{%- endmacro %}

{% macro spark__json_get_values(json_expr, paths) -%}
    array({% for path in paths %}{{ json_get(json_expr, path) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#- The item at a 1-based position of a list (null past its end). -#}
{% macro list_item(list_expr, position) -%}
    {{ return(adapter.dispatch('list_item', 'identity_warehouse')(list_expr, position)) }}
{%- endmacro %}

{% macro default__list_item(list_expr, position) -%}
    {{ list_expr }}[{{ position }}]
{%- endmacro %}

{% macro spark__list_item(list_expr, position) -%}
    try_element_at({{ list_expr }}, {{ position }})
{%- endmacro %}

{% macro json_path_literals(paths) -%}
    {%- for path in paths %}'{{ path | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}
{%- endmacro %}
