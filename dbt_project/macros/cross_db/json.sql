{#- JSON access. DuckDB's functions are the default; other engines add a dispatched version.
    Spark has no JSON type: JSON is text, minified the way Jackson writes it (as DuckDB does). Its
    get_json_object gives a string value unquoted, except under an array wildcard: reading
    `$[*]...` on the document wrapped in `[...]` gives every value as JSON (strings quoted). -#}

{#- The type of a JSON column. -#}
{% macro type_json() -%}
    {{ return(adapter.dispatch('type_json', 'identity_warehouse')()) }}
{%- endmacro %}

{% macro default__type_json() -%}
    json
{%- endmacro %}

{% macro spark__type_json() -%}
    string
{%- endmacro %}

{#- `path` ('$.a.b', '$.a[0].b') under Spark's array wildcard over the wrapped document. -#}
{% macro spark_json_wildcard(json_expr, path) -%}
    get_json_object(concat('[', {{ json_expr }}, ']'), '$[*]{{ spark_json_path(path)[1:] }}')
{%- endmacro %}

{#- The text of a scalar at `path` ('$.a.b'); null when absent or JSON null. -#}
{% macro json_get_string(json_expr, path) -%}
    {{ return(adapter.dispatch('json_get_string', 'identity_warehouse')(json_expr, path)) }}
{%- endmacro %}

{% macro default__json_get_string(json_expr, path) -%}
    json_extract_string({{ json_expr }}, '{{ path }}')
{%- endmacro %}

{% macro spark__json_get_string(json_expr, path) -%}
    get_json_object({{ json_expr }}, '{{ spark_json_path(path) }}')
{%- endmacro %}

{#- A path in Spark's syntax: a quoted key (`$."Member Email"`) in brackets (`$['Member Email']`),
    written for a SQL literal. -#}
{% macro spark_json_path(path) -%}
    {{ modules.re.sub('\\."((?:[^"\\\\]|\\\\.)*)"', "[\\\\'\\1\\\\']", path) }}
{%- endmacro %}

{#- The JSON value at `path`, as JSON; null when absent. -#}
{% macro json_get(json_expr, path) -%}
    {{ return(adapter.dispatch('json_get', 'identity_warehouse')(json_expr, path)) }}
{%- endmacro %}

{% macro default__json_get(json_expr, path) -%}
    json_extract({{ json_expr }}, '{{ path }}')
{%- endmacro %}

{% macro spark__json_get(json_expr, path) -%}
    {{ spark_json_wildcard(json_expr, path) }}
{%- endmacro %}

{#- A select of every column of `relation` and of several fields of one JSON document in it.
    `fields` maps a column name to [kind, path]: kind 'string' reads as json_get_string, 'json' as
    json_get. DuckDB parses the whole document in each call, so it reads every field of a kind in one
    call (stg_segment__tracks at 1 M people: 11 s against 21 s with a call per field). -#}
{% macro select_json_fields(relation, json_expr, fields) -%}
    {{ return(adapter.dispatch('select_json_fields', 'identity_warehouse')(relation, json_expr, fields)) }}
{%- endmacro %}

{% macro default__select_json_fields(relation, json_expr, fields) -%}
    {%- set calls = {'string': 'json_extract_string', 'json': 'json_extract'} -%}
    {%- set paths = {'string': [], 'json': []} -%}
    {%- for spec in fields.values() if spec[1] not in paths[spec[0]] %}{% do paths[spec[0]].append(spec[1]) %}{% endfor -%}
    {%- set kinds = [] -%}
    {%- for kind, kind_paths in paths.items() if kind_paths %}{% do kinds.append(kind) %}{% endfor -%}
    {%- set helper_columns = [] -%}
    {%- for kind in kinds %}{% do helper_columns.append(kind ~ '_fields__') %}{% endfor -%}
    select
        * {{ exclude_columns(helper_columns) }},
        {%- for column, spec in fields.items() %}
        {{ spec[0] }}_fields__[{{ paths[spec[0]].index(spec[1]) + 1 }}] as {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from (
        select
            *,
            {%- for kind in kinds %}
            {{ calls[kind] }}({{ json_expr }}, [{% for path in paths[kind] %}'{{ path }}'{{ ", " if not loop.last }}{% endfor %}]) as {{ kind }}_fields__{{ "," if not loop.last }}
            {%- endfor %}
        from {{ relation }}
    ) as extracted
{%- endmacro %}

{% macro spark__select_json_fields(relation, json_expr, fields) -%}
    select
        *,
        {%- for column, spec in fields.items() %}
        {{ json_get_string(json_expr, spec[1]) if spec[0] == 'string' else json_get(json_expr, spec[1]) }} as {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ relation }}
{%- endmacro %}

{#- Set-returning: one row per top-level key of a JSON object. -#}
{% macro json_object_keys(json_expr) -%}
    {{ return(adapter.dispatch('json_object_keys', 'identity_warehouse')(json_expr)) }}
{%- endmacro %}

{% macro default__json_object_keys(json_expr) -%}
    unnest(json_keys({{ json_expr }}))
{%- endmacro %}

{% macro spark__json_object_keys(json_expr) -%}
    explode(json_object_keys({{ json_expr }}))
{%- endmacro %}

{#- The JSON value under a key held in a column (any characters in the key). -#}
{% macro json_get_key(json_expr, key_expr) -%}
    {{ return(adapter.dispatch('json_get_key', 'identity_warehouse')(json_expr, key_expr)) }}
{%- endmacro %}

{% macro default__json_get_key(json_expr, key_expr) -%}
    json_extract({{ json_expr }}, '$."' || replace({{ key_expr }}, '"', '\"') || '"')
{%- endmacro %}

{#- Spark: the key in brackets (`$[*]['key']`), so it may hold dots and spaces, but not a quote. -#}
{% macro spark__json_get_key(json_expr, key_expr) -%}
    get_json_object(concat('[', {{ json_expr }}, ']'), concat('$[*][\'', {{ key_expr }}, '\']'))
{%- endmacro %}

{#- Aggregate: build one JSON object from key/value rows, keys in order (the output is deterministic). -#}
{% macro json_object_agg(key_expr, value_expr) -%}
    {{ return(adapter.dispatch('json_object_agg', 'identity_warehouse')(key_expr, value_expr)) }}
{%- endmacro %}

{% macro default__json_object_agg(key_expr, value_expr) -%}
    to_json(map(list({{ key_expr }} order by {{ key_expr }}), list({{ value_expr }} order by {{ key_expr }})))
{%- endmacro %}

{#- Spark: the values are JSON text already, so the object is written as text, keys in order. -#}
{% macro spark__json_object_agg(key_expr, value_expr) -%}
    concat('{', array_join(transform(
        array_sort(collect_list(named_struct('k', {{ key_expr }}, 'v', {{ value_expr }}))),
        e -> concat({{ spark_json_quote('e.k') }}, ':', e.v)), ','), '}')
{%- endmacro %}

{#- A string as a JSON string (quoted and escaped as Jackson does). -#}
{% macro spark_json_quote(expr) -%}
    substr(to_json(array({{ expr }})), 2, length(to_json(array({{ expr }}))) - 2)
{%- endmacro %}

{#- True when a JSON value is present and not JSON null. -#}
{% macro json_is_present(json_expr) -%}
    {{ return(adapter.dispatch('json_is_present', 'identity_warehouse')(json_expr)) }}
{%- endmacro %}

{% macro default__json_is_present(json_expr) -%}
    ({{ json_expr }} is not null and json_type({{ json_expr }}) <> 'NULL')
{%- endmacro %}

{#- Spark: get_json_object gives SQL null for a JSON null. -#}
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
