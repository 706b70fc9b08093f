{#- How an incremental model finds what changed since its last build: from its own table, read
    before the build, and from the change columns of its inputs. -#}

{#- Whether `relation` holds a row where `condition` (SQL) holds: it stops at the first one. -#}
{% macro holds_rows_where(relation, condition) %}
    {{ return(run_query("select count(*) from (select 1 from " ~ relation ~ " where " ~ condition
                        ~ " limit 1) as found").rows[0][0] > 0) }}
{% endmacro %}

{#- Whether `relation` holds rows built under other rules than `fingerprint` (its `rules_fingerprint`). -#}
{% macro built_under_other_rules(relation, fingerprint) %}
    {{ return(holds_rows_where(relation, "rules_fingerprint <> '" ~ fingerprint ~ "'")) }}
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

{#- The messages of int_messages whose standing copy arrived since `relation` was last built: loaded
    after the newest of their type in it (each staging model is built on its own; an
    earlier-received copy of a message id arrives as a new standing copy). `arrived_after` is
    arrival_bound's literal, or none. -#}
{% macro messages_arrived_since(relation, arrived_after, columns='messages.*') %}
    select {{ columns }}
    from {{ ref('int_messages') }} as messages
    left join (
        select message_type, max(loaded_at) as loaded_at from {{ relation }} group by message_type
    ) as watermarks on watermarks.message_type = messages.message_type
    where {% if arrived_after %}messages.loaded_at > {{ arrived_after }} and {% endif -%}
        (watermarks.loaded_at is null or messages.loaded_at > watermarks.loaded_at)
{% endmacro %}

{#- The messages whose int_identifiers rows were written since `last_build` (a CTE with the last
    build's start as `updated_at`: they arrived, or their identifiers changed type or rules), and
    those that carry an identifier whose profile or junk status changed since (int_profile_ids). -#}
{% macro messages_reidentified_or_reprofiled_since(last_build) %}
    select identifiers.message_id
    from {{ ref('int_identifiers') }} as identifiers
    join {{ last_build }} on identifiers.built_at > {{ last_build }}.updated_at

    union

    select identifiers.message_id
    from {{ ref('int_identifiers') }} as identifiers
    join {{ ref('int_profile_ids') }} as profile_ids
        on profile_ids.identifier_type = identifiers.identifier_type
        and profile_ids.identifier_value = identifiers.identifier_value
    join {{ last_build }} on profile_ids.changed_at > {{ last_build }}.updated_at
{% endmacro %}

{#- The messages of `relation` that are gone: a contact list's newer export without a record.
    (Segment messages stay staged; a privacy erasure deletes their rows itself.) -#}
{% macro messages_gone_from(relation) %}
    select previous.message_id
    from {{ relation }} as previous
    left join (
        select message_id from {{ ref('int_messages') }} where source <> 'segment'
    ) as kept on kept.message_id = previous.message_id
    where previous.source <> 'segment' and kept.message_id is null
{% endmacro %}

{#- The profiles that `relation` (a profile mart with `updated_at`) must rebuild: those whose
    fingerprint in `changes` (int_profile_changes) changed since its last build, and those it holds
    that are gone. -#}
{% macro profiles_changed_since(relation, changes) %}
    select profile_id
    from {{ changes }}
    where changed_at > (select coalesce(max(updated_at), cast('1900-01-01' as timestamp)) from {{ relation }})

    union

    select previous.profile_id
    from {{ relation }} as previous
    left join {{ changes }} as current on current.profile_id = previous.profile_id
    where current.profile_id is null
{% endmacro %}

{#- Whether `relation` (a computed model whose rows keep the `as_of` they were computed at) holds
    rows computed at a later time than `as_of` (an SQL expression): a build back in time. -#}
{% macro computed_after(relation, as_of) %}
    {{ return(holds_rows_where(relation, "as_of > " ~ as_of)) }}
{% endmacro %}

{#- The profiles with an event that time alone moved across the edge of a window since `relation`
    was last computed: for each edge, `days` before as_of (0: events become countable at their
    time), the events between that edge then (the newest `as_of` in `relation`) and now. A build
    that recomputed no row leaves an older newest `as_of`: the band is then wider, never short. -#}
{% macro profiles_with_events_across_window_edges(relation, edges) %}
    select distinct events.profile_id
    from {{ ref('profile_events') }} as events
    cross join (select max(as_of) as as_of from {{ relation }}) as last_build
    where events.profile_id is not null and (
        {%- for days in edges %}
        (events.event_at > {{ dbt.dateadd('day', -days, 'last_build.as_of') }}
            and events.event_at <= {{ dbt.dateadd('day', -days, as_of()) }}){{ ' or' if not loop.last }}
        {%- endfor %}
    )
{% endmacro %}

{#- A table of state kept beside the model's own (`<model>__<name>`), written by a post-hook
    (replace_table_hook): what the next build must know that the model's rows cannot say. -#}
{% macro state_relation(name) %}
    {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__' ~ name)) }}
{% endmacro %}

{#- Whether the state table `name` (state_relation) exists. -#}
{% macro state_exists(name) %}
    {%- set relation = state_relation(name) -%}
    {{ return(adapter.get_relation(database=relation.database, schema=relation.schema,
                                   identifier=relation.identifier) is not none) }}
{% endmacro %}

{#- on_schema_change for models whose columns changed between versions: DuckDB drops the old ones
    and adds the new (a column a later build reads comes with a step of
    orchestration/core/migrations.py, which runs before the build); Spark cannot drop a column from a
    parquet table, so there a build stops with dbt's message instead (see docs/spark.md,
    "What is portable, and how", for the upgrade). -#}
{% macro sync_columns_where_possible() %}
    {{ return('fail' if target.type == 'spark' else 'sync_all_columns') }}
{% endmacro %}
