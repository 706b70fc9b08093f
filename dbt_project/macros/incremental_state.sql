{#- What an incremental model reads of its own table before the build. -#}

{#- The columns of `names` that `relation` lacks (a table built by an earlier version). -#}
{% macro missing_columns(relation, names) %}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {{ return(names | reject('in', columns) | list) }}
{% endmacro %}

{#- The oldest of the newest `loaded_at` per message type in `relation`, as a timestamp literal for
    the model's SQL: with it, DuckDB skips the staging row groups loaded before it. None while some
    message type of `messages` has no row in `relation` yet (all its messages are new). -#}
{% macro arrival_bound(relation, messages) %}
    {%- set row = run_query(
        "with built as (select message_type, max(loaded_at) as loaded_at from " ~ relation ~ " group by message_type),"
        ~ " types as (select distinct message_type from " ~ messages ~ ")"
        ~ " select min(built.loaded_at), count(*) - count(built.loaded_at)"
        ~ " from types left join built on built.message_type = types.message_type"
    ).rows[0] -%}
    {{ return("cast('" ~ row[0] ~ "' as timestamp)" if row[0] is not none and row[1] == 0 else none) }}
{% endmacro %}
