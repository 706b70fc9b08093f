{{ config(
    materialized='incremental',
    meta={'build_watermark': 'built_at'},
    incremental_strategy='replace_keys',
    unique_key=['identifier_type', 'identifier_value'],
    key_only_when_null='derived_profile_id',
    on_schema_change=sync_columns_where_possible(),
    post_hook="{{ drop_components_work() }}",
) }}

{#- The identity graph: connected components over the edges, then merge protection (components
    over a max_per_profile limit are split, weakest links first). A profile's id is derived from its
    oldest identifier, so re-running on the same data gives the same ids and a merge keeps the
    older profile's id.

    Incremental: a build recomputes only the components that changed, and writes only their rows
    (and deletes those of identifiers that are gone); the others stay as the last build left them.
    Rows name their profile and component by their oldest identifier, not by node numbers (which new
    identifiers shift), so a component no identifier of which changed keeps its rows as they are. An
    identifier is changed when it is new or gone, when its first sighting, message count or junk
    status differs from the last build's, or when int_identifiers rewrote a message of it since; a
    component changed when it holds a changed identifier or an edge links it to one (every edge that
    came or went has a changed end, or both ends in one such component). Merge protection decides
    within a component, by the order of its own identifiers, so recomputing some components gives
    what recomputing all would. Under other identity rules every component is recomputed and every row written. -#}
{%- set rules_fingerprint = identity_rules_fingerprint() -%}
{%- set update = is_incremental() and this is not string
    and not built_under_other_rules(this, rules_fingerprint) -%}
{%- set all_nodes = ref('int_identity_nodes') -%}
{%- set identifiers = ref('int_identifiers') -%}
{%- set work = cc_work_relations(update_work_parts()) -%}
{#- The nodes this build works on, numbered oldest first for the graph algorithms (a profile's
    smallest node is its oldest identifier): every node, or in an incremental build those of the
    components it recomputes. -#}
{%- set nodes = work.update_nodes -%}
{%- set numbered_nodes = "select row_number() over (order by " ~ identifier_age_order('current') ~ ") as node_id,"
                         ~ " current.* from " ~ all_nodes ~ " as current" -%}
{%- if graph_loops_run() and not update -%}
    {%- do run_statements(cc_replace_table(work.update_nodes, numbered_nodes)) -%}
{%- elif graph_loops_run() -%}
    {#- The changed identifiers: new, gone, counted or seen differently, or in a rewritten message;
        the components to recompute: those of the changed identifiers and of their neighbours;
        and their identifiers now, with the new ones: the part of the graph this build works on. -#}
    {%- do run_statements(
        cc_replace_table(work.update_changed,
            "select coalesce(current.identifier_type, previous.identifier_type) as identifier_type,"
            ~ " coalesce(current.identifier_value, previous.identifier_value) as identifier_value"
            ~ " from " ~ all_nodes ~ " as current full outer join " ~ this ~ " as previous"
            ~ " on previous.identifier_type = current.identifier_type"
            ~ " and previous.identifier_value = current.identifier_value"
            ~ " where current.identifier_type is null or previous.identifier_type is null"
            ~ " or current.message_count <> previous.message_count or current.is_junk <> previous.is_junk"
            ~ " or current.first_seen_at <> previous.first_seen_at"
            ~ " or (current.first_seen_at is null) <> (previous.first_seen_at is null)"
            ~ " union select identifier_type, identifier_value from " ~ identifiers
            ~ " where is_linkable and built_at > (select max(built_at) from " ~ this ~ ")")
        ~ "; " ~ cc_replace_table(work.update_components,
            "select distinct previous.graph_component_key from " ~ this ~ " as previous join ("
            ~ " select identifier_type, identifier_value from " ~ work.update_changed
            ~ " union select edges.to_type, edges.to_value from " ~ ref('int_identity_edges') ~ " as edges"
            ~ " join " ~ work.update_changed ~ " as changed on changed.identifier_type = edges.from_type"
            ~ " and changed.identifier_value = edges.from_value"
            ~ " union select edges.from_type, edges.from_value from " ~ ref('int_identity_edges') ~ " as edges"
            ~ " join " ~ work.update_changed ~ " as changed on changed.identifier_type = edges.to_type"
            ~ " and changed.identifier_value = edges.to_value"
            ~ ") as reached on reached.identifier_type = previous.identifier_type"
            ~ " and reached.identifier_value = previous.identifier_value")
        ~ "; " ~ cc_replace_table(work.update_nodes,
            numbered_nodes ~ " left join " ~ this ~ " as previous"
            ~ " on previous.identifier_type = current.identifier_type"
            ~ " and previous.identifier_value = current.identifier_value"
            ~ " where previous.identifier_type is null or previous.graph_component_key in"
            ~ " (select graph_component_key from " ~ work.update_components ~ ")")
    ) -%}
    {%- set counts = run_query("select (select count(*) from " ~ work.update_nodes ~ "), (select count(*) from "
                               ~ all_nodes ~ ")").rows[0] -%}
    {{ log("int_identity_components: recomputing the components of " ~ counts[0] ~ " of " ~ counts[1]
           ~ " identifiers", info=true) }}
{%- endif -%}
{%- set node_edges -%}
    select source_node.node_id as src, target_node.node_id as dst, edges.weak_priority, edges.event_at, edges.message_id
    from {{ ref('int_identity_edges') }} as edges
    join {{ nodes }} as source_node
        on source_node.identifier_type = edges.from_type and source_node.identifier_value = edges.from_value
    join {{ nodes }} as target_node
        on target_node.identifier_type = edges.to_type and target_node.identifier_value = edges.to_value
{%- endset -%}
{%- set components_sql = connected_components("select node_id from " ~ nodes, node_edges) -%}

with

clusters as (

    {{ enforce_identifier_limits(
        components_sql,
        "select node_id, identifier_type, max_per_profile from " ~ nodes,
        node_edges
    ) }}

),

nodes as (

    select * from {{ nodes }}

),

components as (

    select
        nodes.identifier_type,
        nodes.identifier_value,
        'prof_' || substr({{ dbt.hash("profile_root.identifier_type || ':' || profile_root.identifier_value") }}, 1, 20) as derived_profile_id,
        'graph_' || substr({{ dbt.hash("graph_root.identifier_type || ':' || graph_root.identifier_value") }}, 1, 20) as graph_component_key,
        nodes.first_seen_at,
        nodes.message_count,
        nodes.is_junk

    from nodes
    join clusters on clusters.node_id = nodes.node_id
    join nodes as profile_root on profile_root.node_id = clusters.cluster_id
    join nodes as graph_root on graph_root.node_id = clusters.component_id

)

select
    *,
    '{{ rules_fingerprint }}' as rules_fingerprint,
    {{ build_timestamp() }} as built_at

from components
{%- if is_incremental() %}

union all

{% if update -%}
-- The rows of the recomputed components, those of identifiers now gone with them, are replaced.
select
    identifier_type,
    identifier_value,
    {%- for column in ['derived_profile_id', 'graph_component_key', 'first_seen_at', 'message_count', 'is_junk',
                       'rules_fingerprint', 'built_at'] %}
    null as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
from {{ this }}
where graph_component_key in (select graph_component_key from {{ work.update_components }})
{%- else -%}
-- Every row is written again: one key-only row with a null key names them all (replace_keys).
select
    {%- for column in ['identifier_type', 'identifier_value', 'derived_profile_id', 'graph_component_key'] %}
    cast(null as {{ dbt.type_string() }}) as {{ column }},
    {%- endfor %}
    cast(null as timestamp) as first_seen_at,
    cast(null as {{ dbt.type_bigint() }}) as message_count,
    cast(null as {{ dbt.type_boolean() }}) as is_junk,
    cast(null as {{ dbt.type_string() }}) as rules_fingerprint,
    cast(null as timestamp) as built_at
{%- endif %}
{%- endif %}
