{#- Stitching policies: what an identifier over a `junk_detection` threshold does (`on_conflict` of
    its identifier type in the identity rules). orchestration/identity/rules.py checks the same
    values when Python reads the rules. -#}

{#- The `on_conflict` of every identifier type (checked: an unknown value is an error naming the type).
    `junk` links no one (the default); `latest` / `first` link only to the neighbour of the exceeded
    type seen last / first (by event time; same time: the larger / smaller message id), the way
    Segment's and Snowplow's models stitch a device to its latest user. -#}
{% macro identifier_on_conflict_by_type() %}
    {%- set known = ['junk', 'latest', 'first'] -%}
    {%- set policies = {} -%}
    {%- for type, rule in identifier_types().items() -%}
        {%- set policy = (rule or {}).get('on_conflict', 'junk') -%}
        {%- if policy not in known -%}
            {{ exceptions.raise_compiler_error("identity_rules: identifier type '" ~ type ~ "': unknown on_conflict '"
                ~ policy ~ "' (use one of " ~ known | join(', ') ~ ")") }}
        {%- endif -%}
        {%- do policies.update({type: policy}) -%}
    {%- endfor -%}
    {{ return(policies) }}
{% endmacro %}

{#- The `on_conflict` of a type, as a SQL expression over a type column (types the rules do not
    name: junk). -#}
{% macro identifier_on_conflict(type_expr) -%}
    case {{ type_expr }}
        {%- for type, policy in identifier_on_conflict_by_type().items() %}
        when '{{ type }}' then '{{ policy }}'
        {%- endfor %}
        else 'junk'
    end
{%- endmacro %}

{#- The `junk_detection` thresholds split by kind: `direct` (neighbour type → most distinct values,
    seen in the same messages) and `through` (`<hop type>.<far type>`: the most distinct far
    identifiers seen with the subject's hop identifiers, e.g. `anonymous_id.user_id` for the user ids
    of the devices an e-mail was typed on). Each a list of (subject type, neighbour, limit, hop, far). -#}
{% macro junk_thresholds() %}
    {%- set direct, through = [], [] -%}
    {%- for subject_type, limits in identity_rules().get('junk_detection', {}).items() -%}
        {%- for neighbour, limit in (limits or {}).items() -%}
            {%- set hop, dot, far = (neighbour | string).partition('.') -%}
            {%- if not dot -%}
                {%- do direct.append({'subject': subject_type, 'neighbour': neighbour, 'limit': limit}) -%}
            {%- elif hop and far and hop != subject_type and '.' not in far -%}
                {%- do through.append({'subject': subject_type, 'neighbour': neighbour, 'limit': limit,
                                       'hop': hop, 'far': far}) -%}
            {%- else -%}
                {{ exceptions.raise_compiler_error("identity_rules: junk_detection of '" ~ subject_type
                    ~ "': '" ~ neighbour ~ "' is neither a type nor <other type>.<type>") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return({'direct': direct, 'through': through}) }}
{% endmacro %}

{#- Rows of (identifier_type, neighbour_type, max_distinct_neighbours[, hop_type, far_type]) as a
    union of selects, or an empty select of the same columns. -#}
{% macro threshold_rows(thresholds, with_hops=false) -%}
    {%- set rows = [] -%}
    {%- for t in thresholds -%}
        {%- do rows.append("select '" ~ t.subject ~ "' as identifier_type, '" ~ t.neighbour ~ "' as neighbour_type, "
                           ~ t.limit ~ " as max_distinct_neighbours"
                           ~ (", '" ~ t.hop ~ "' as hop_type, '" ~ t.far ~ "' as far_type" if with_hops else "")) -%}
    {%- endfor -%}
    {%- if rows -%}
        {{ rows | join('\n    union all\n    ') }}
    {%- else -%}
        select cast(null as {{ dbt.type_string() }}) as identifier_type, cast(null as {{ dbt.type_string() }}) as neighbour_type,
            0 as max_distinct_neighbours
            {%- if with_hops %}, cast(null as {{ dbt.type_string() }}) as hop_type, cast(null as {{ dbt.type_string() }}) as far_type{% endif %}
        where 1 = 0
    {%- endif -%}
{%- endmacro %}

{#- The neighbour each identifier over a threshold keeps under `on_conflict: latest | first`
    (int_identity_conflicts): what int_identity_edges links it through, and keeps as its state. -#}
{% macro kept_neighbours_sql() -%}
    select distinct identifier_type, identifier_value, neighbour_type, kept_neighbour
    from {{ ref('int_identity_conflicts') }}
    where on_conflict in ('latest', 'first')
{%- endmacro %}

{#- explain_identity's lines for the identifiers stitched on conflict next to either value (as
    orchestration/people/explain.py `stitched_lines` prints them). -#}
{% macro stitched_identity_lines(first, second) %}
    {%- set values = string_literal(first) ~ ", " ~ string_literal(second) -%}
    {%- set rows = run_query(
        "select identifier_type || ':' || identifier_value, on_conflict, neighbour_type, distinct_neighbours, kept_neighbour"
        ~ " from " ~ ref('int_identity_conflicts') ~ " where on_conflict <> 'junk'"
        ~ " and (identifier_value in (" ~ values ~ ") or kept_neighbour in (" ~ values ~ ")"
        ~ " or first_neighbour in (" ~ values ~ ") or last_neighbour in (" ~ values ~ "))"
        ~ " order by 1, 3").rows -%}
    {%- set lines = [] -%}
    {%- for row in rows -%}
        {%- do lines.append("  stitched on conflict: " ~ row[0] ~ " was seen with " ~ row[3] ~ " " ~ row[2]
                            ~ "s; on_conflict " ~ row[1] ~ " links it to " ~ row[2] ~ ":" ~ row[4] ~ " only") -%}
    {%- endfor -%}
    {{ return(lines) }}
{% endmacro %}

{#- The rows of int_identifiers that junk detection counts (int_identity_conflicts): an identifier
    alone in its message has no neighbours there. -#}
{% macro conflicts_counted_rows() -%}
    is_linkable and values_in_message > 1
{%- endmacro %}
