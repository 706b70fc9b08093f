{#- The models that summarise int_identifiers' rows per identifier (int_identity_conflicts: junk
    detection's counts; int_identity_nodes: the graph's nodes) summarise again only the identifiers
    whose rows changed since their last build: the rows int_identifiers wrote since (`built_at`), and
    the rows it replaced since (a message re-read: an earlier copy arrived, an alias's previousId
    changed type; a contact record gone), which its builds keep in `int_identifiers__replaced`
    (`replaced_at`; its config's `log_replaced_columns`, macros/incremental/strategies.sql) until
    int_identity_nodes, the last to read them, empties it. Each model keeps beside it
    (`<this>__counted`) when it last summarised, under which identity rules, and how many rows it
    read; when rows it read are gone with no record (an erasure, a full refresh of int_identifiers),
    or the rules changed, it summarises every identifier again. -#}

{#- The columns int_identifiers keeps of the rows it replaces. -#}
{% macro replaced_identifier_columns() %}
    {{ return(['message_id', 'identifier_type', 'identifier_value', 'is_linkable', 'values_in_message', 'built_at']) }}
{% endmacro %}

{#- Since when the model summarises, given `rows` (a condition on int_identifiers: the rows it
    reads): {since: its last build's start, as a timestamp literal; replaced: int_identifiers'
    replaced rows, or none}, when every row it read is still there or among the rows replaced since,
    and the identity rules are the same. Else none: every identifier. The dbt log says which. -#}
{% macro identifier_rows_since(rows) %}
    {%- if this is string -%}{{ return(none) }}{%- endif -%}  {#- a unit test's `this`: a fixture -#}
    {%- set identifiers = ref('int_identifiers') -%}
    {%- set replaced = replaced_rows_relation(identifiers) -%}
    {%- set replaced = adapter.get_relation(database=replaced.database, schema=replaced.schema,
                                            identifier=replaced.identifier) -%}
    {%- set reason = none -%}
    {%- if not state_exists('counted') -%}
        {%- set reason = 'no earlier count' -%}
    {%- else -%}
        {%- set state = run_query("select built_at, rules_fingerprint, rows_counted from "
                                  ~ state_relation('counted')).rows[0] -%}
        {%- set since = "cast('" ~ state[0] ~ "' as timestamp)" -%}
        {%- set read = " where " ~ rows ~ " and built_at " -%}
        {%- set counts = run_query(
            "select (select count(*) from " ~ identifiers ~ read ~ "<= " ~ since ~ "),"
            ~ " (select count(*) from " ~ identifiers ~ read ~ "> " ~ since ~ "),"
            ~ (" (select count(*) from " ~ replaced ~ read ~ "<= " ~ since ~ " and replaced_at > " ~ since ~ ")"
               if replaced else " 0")).rows[0] -%}
        {%- if state[1] != identity_rules_fingerprint() -%}
            {%- set reason = 'other identity rules' -%}
        {%- elif state[2] - counts[0] != counts[2] -%}
            {%- set reason = 'rows counted are gone' -%}
        {%- endif -%}
    {%- endif -%}
    {%- if reason -%}
        {{ log(this.identifier ~ ": counting every identifier (" ~ reason ~ ")", info=true) }}
        {{ return(none) }}
    {%- endif -%}
    {{ log(this.identifier ~ ": counting the identifiers of " ~ counts[1] ~ " rows written and "
           ~ counts[2] ~ " replaced since the last count", info=true) }}
    {{ return({'since': since, 'replaced': replaced}) }}
{% endmacro %}

{#- The identifiers of the rows (`rows`, as above) written or replaced since `counted` (what
    identifier_rows_since returned), as a select. -#}
{% macro identifiers_of_rows_since(counted, rows) -%}
    select identifier_type, identifier_value
    from {{ ref('int_identifiers') }}
    where {{ rows }} and built_at > {{ counted.since }}
    {%- if counted.replaced %}

    union

    select identifier_type, identifier_value
    from {{ counted.replaced }}
    where {{ rows }} and replaced_at > {{ counted.since }}
    {%- endif %}
{%- endmacro %}

{#- The post-hook that records the model's summary (`<this>__counted`). -#}
{% macro identifier_rows_counted(rows) -%}
    {{ return(replace_table_hook(state_relation('counted'),
        "select " ~ build_timestamp() ~ " as built_at, '" ~ identity_rules_fingerprint() ~ "' as rules_fingerprint,"
        ~ " count(*) as rows_counted from " ~ ref('int_identifiers') ~ " where " ~ rows)) }}
{%- endmacro %}

{#- The post-hook of the last model to read int_identifiers' replaced rows: emptied. -#}
{% macro replaced_identifiers_emptied() -%}
    {%- set identifiers = ref('int_identifiers') -%}
    {{ return(replace_table_hook(replaced_rows_relation(identifiers),
        "select " ~ replaced_identifier_columns() | join(', ') ~ ", cast(null as timestamp) as replaced_at from "
        ~ identifiers ~ " where 1 = 0")) }}
{%- endmacro %}

{#- The key-only rows that end an identifier summary's build (replace_keys): one per identifier
    summarised again (`summarised`: a relation or CTE of them) when `counted` (identifier_rows_since
    returned where from), so their rows are replaced by fewer or none; one with a null key (every row
    replaced) when every identifier was summarised again; none in a first build. -#}
{% macro identifier_key_only_rows(columns, counted, summarised) -%}
    {%- if is_incremental() %}

union all

select {{ key_only_columns(columns, ['identifier_type', 'identifier_value'] if counted else 'null') }}
{%- if counted %}
from {{ summarised }}
{%- endif %}
    {%- endif %}
{%- endmacro %}
