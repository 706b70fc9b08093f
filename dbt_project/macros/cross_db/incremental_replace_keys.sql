{#- The `replace_keys` incremental strategy: delete+insert, where a build can also name a key without
    giving it rows. A build row whose `key_only_when_null` column is null only names its key: every
    row of the table with a key the build names is deleted, then the build's other rows are
    inserted. A key's rows can so be replaced by fewer or none (int_identifiers: a message re-read
    may carry no identifier now, or be gone). A key-only row whose key is null names every key: the
    build replaces the whole table without comparing keys (a model rebuilt under other rules, or
    one that reads its previous state and writes every row: int_identity_components,
    int_profile_ids). Spark's version is in macros/spark. -#}
{% macro get_incremental_replace_keys_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set keys = [arg_dict['unique_key']] if arg_dict['unique_key'] is string else arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} where exists ({{ replace_keys_everything(source, keys) }});
    delete from {{ target }} as replaced using {{ source }} as build
    where {% for key in keys %}build.{{ key }} = replaced.{{ key }}{{ " and " if not loop.last }}{% endfor %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }} where {{ config.require('key_only_when_null') }} is not null
{% endmacro %}

{#- The build's key-only row with a null key, if any: it names every key. -#}
{% macro replace_keys_everything(build, keys) -%}
    select 1 from {{ build }}
    where {{ config.require('key_only_when_null') }} is null
        {%- for key in keys %} and {{ key }} is null{% endfor %}
{%- endmacro %}

{#- The select list of a key-only row: `key` (an SQL expression; 'null' names every key) as the
    first of `columns`, null as the others. -#}
{% macro key_only_columns(columns, key) -%}
    {%- for column in columns %}
    {{ key if loop.first else 'null' }} as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}
