{#- The `replace_keys` incremental strategy: delete+insert, where a build can also name a key without
    giving it rows. A build row whose `key_only_when_null` column is null only names its key: every
    row of the table with a key the build names is deleted, then the build's other rows are
    inserted. A key's rows can so be replaced by fewer or none (int_identifiers: a message re-read
    may carry no identifier now, or be gone; int_profile_ids: an identifier is gone). Spark's
    version is in macros/spark. -#}
{% macro get_incremental_replace_keys_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set keys = [arg_dict['unique_key']] if arg_dict['unique_key'] is string else arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} as replaced using {{ source }} as build
    where {% for key in keys %}build.{{ key }} = replaced.{{ key }}{{ " and " if not loop.last }}{% endfor %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }} where {{ config.require('key_only_when_null') }} is not null
{% endmacro %}
