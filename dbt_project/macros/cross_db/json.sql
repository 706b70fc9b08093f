{#- JSON access. DuckDB's functions are the default; other engines add a dispatched version. -#}

{#- The text of a scalar at `path` ('$.a.b'); null when absent or JSON null. -#}
{% macro json_get_string(json_expr, path) -%}
    {{ return(adapter.dispatch('json_get_string', 'identity_warehouse')(json_expr, path)) }}
{%- endmacro %}

{% macro default__json_get_string(json_expr, path) -%}
    json_extract_string({{ json_expr }}, '{{ path }}')
{%- endmacro %}

{% macro spark__json_get_string(json_expr, path) -%}
    get_json_object({{ json_expr }}, '{{ path }}')
{%- endmacro %}

{#- The JSON value at `path`, as JSON; null when absent. -#}
{% macro json_get(json_expr, path) -%}
    {{ return(adapter.dispatch('json_get', 'identity_warehouse')(json_expr, path)) }}
{%- endmacro %}

{% macro default__json_get(json_expr, path) -%}
    json_extract({{ json_expr }}, '{{ path }}')
{%- endmacro %}

{% macro spark__json_get(json_expr, path) -%}
    get_json_object({{ json_expr }}, '{{ path }}')
{%- endmacro %}

{#- Set-returning: one row per top-level key of a JSON object. -#}
{% macro json_object_keys(json_expr) -%}
    {{ return(adapter.dispatch('json_object_keys', 'identity_warehouse')(json_expr)) }}
{%- endmacro %}

{% macro default__json_object_keys(json_expr) -%}
    unnest(json_keys({{ json_expr }}))
{%- endmacro %}

{% macro spark__json_object_keys(json_expr) -%}
    explode(map_keys(from_json({{ json_expr }}, 'map<string,string>')))
{%- endmacro %}

{#- The JSON value under a key held in a column (any characters in the key). -#}
{% macro json_get_key(json_expr, key_expr) -%}
    {{ return(adapter.dispatch('json_get_key', 'identity_warehouse')(json_expr, key_expr)) }}
{%- endmacro %}

{% macro default__json_get_key(json_expr, key_expr) -%}
    json_extract({{ json_expr }}, '$."' || replace({{ key_expr }}, '"', '\"') || '"')
{%- endmacro %}

{% macro spark__json_get_key(json_expr, key_expr) -%}
    from_json({{ json_expr }}, 'map<string,string>')[{{ key_expr }}]
{%- endmacro %}

{#- Aggregate: build one JSON object from key/value rows, keys in order (the output is deterministic). -#}
{% macro json_object_agg(key_expr, value_expr) -%}
    {{ return(adapter.dispatch('json_object_agg', 'identity_warehouse')(key_expr, value_expr)) }}
{%- endmacro %}

{% macro default__json_object_agg(key_expr, value_expr) -%}
    to_json(map(list({{ key_expr }} order by {{ key_expr }}), list({{ value_expr }} order by {{ key_expr }})))
{%- endmacro %}

{% macro spark__json_object_agg(key_expr, value_expr) -%}
    to_json(map_from_entries(array_sort(collect_list(struct({{ key_expr }}, {{ value_expr }})))))
{%- endmacro %}

{#- True when a JSON value is present and not JSON null. -#}
{% macro json_is_present(json_expr) -%}
    {{ return(adapter.dispatch('json_is_present', 'identity_warehouse')(json_expr)) }}
{%- endmacro %}

{% macro default__json_is_present(json_expr) -%}
    ({{ json_expr }} is not null and json_type({{ json_expr }}) <> 'NULL')
{%- endmacro %}

{% macro spark__json_is_present(json_expr) -%}
    ({{ json_expr }} is not null and {{ json_expr }} <> 'null')
{%- endmacro %}

{#- Aggregate: the distinct non-null values as a sorted JSON array. -#}
{% macro json_array_agg_distinct(expr) -%}
    {{ return(adapter.dispatch('json_array_agg_distinct', 'identity_warehouse')(expr)) }}
{%- endmacro %}

{% macro default__json_array_agg_distinct(expr) -%}
    to_json(list(distinct {{ expr }} order by {{ expr }}))
{%- endmacro %}

{% macro spark__json_array_agg_distinct(expr) -%}
    to_json(array_sort(collect_set({{ expr }})))
{%- endmacro %}
