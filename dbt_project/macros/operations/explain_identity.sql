{#- Why is an identifier in its profile, and why are two identifiers one profile (or not)?

        dbt run-operation explain_identity --args '{identifier: "email:Dana@Example.com"}'
        dbt run-operation explain_identity --args '{identifier: "email:dana@example.com", other: "anonymous_id:amp-web-dana"}'

    Identifiers are `type:value` or a bare value (any type, as `lookup` takes it), the value as sent or
    normalised. With one identifier: its profile and every link inside it with its evidence. With two:
    the shortest chain of links between them, each with the message or contact row that makes it; or,
    when they are two profiles, what kept them apart. Every value reaches the SQL as a string literal.
    `identity-warehouse explain` runs the same in Python (orchestration/people/explain.py), without dbt: dbt
    writes a run-operation's arguments into its log (logs/dbt.log). -#}
{% macro explain_identity(identifier, other=none) %}
    {%- set first = _resolve_identifier(identifier) -%}
    {%- if first is none -%}{{ return(none) }}{%- endif -%}
    {%- if other is none -%}
        {%- do print("profile " ~ first.profile_id ~ " (" ~ first.key ~ ")") -%}
        {%- for link in _profile_links(first.profile_id) -%}
            {%- do print("  " ~ link.a ~ "  --  " ~ link.b ~ "   " ~ link.evidence) -%}
        {%- endfor -%}
        {%- for line in stitched_identity_lines(first.value, first.value) -%}{%- do print(line) -%}{%- endfor -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set second = _resolve_identifier(other) -%}
    {%- if second is none -%}{{ return(none) }}{%- endif -%}
    {%- if first.profile_id != second.profile_id -%}
        {%- do print(first.key ~ " is in " ~ first.profile_id ~ ", " ~ second.key ~ " in " ~ second.profile_id ~ ": not one person.") -%}
        {%- set apart = run_query(
            "select from_type || ':' || from_value, to_type || ':' || to_value, message_id, refusal_reason"
            ~ " from " ~ ref('identity_links') ~ " where link_status = 'refused'"
            ~ " and from_profile_id in (" ~ string_literal(first.profile_id) ~ ", " ~ string_literal(second.profile_id) ~ ")"
            ~ " and to_profile_id in (" ~ string_literal(first.profile_id) ~ ", " ~ string_literal(second.profile_id) ~ ")"
            ~ " order by event_at, message_id, 1, 2") -%}
        {%- for row in apart.rows -%}
            {%- do print("  refused: " ~ row[0] ~ " -- " ~ row[1] ~ " in " ~ row[2] ~ " (" ~ row[3] ~ ")") -%}
        {%- endfor -%}
        {%- set junk = run_query(
            "select identifier_type || ':' || identifier_value, reason, distinct_neighbours from " ~ ref('junk_identifiers')
            ~ " where first_neighbour in (" ~ string_literal(first.value) ~ ", " ~ string_literal(second.value) ~ ")"
            ~ " or last_neighbour in (" ~ string_literal(first.value) ~ ", " ~ string_literal(second.value) ~ ")"
            ~ " order by 1") -%}
        {%- for row in junk.rows -%}
            {%- do print("  junk, links no one: " ~ row[0] ~ " (" ~ row[1] ~ ", " ~ row[2] ~ ")") -%}
        {%- endfor -%}
        {%- for line in stitched_identity_lines(first.value, second.value) -%}{%- do print(line) -%}{%- endfor -%}
        {{ return(none) }}
    {%- endif -%}
    {#- Breadth-first search over the profile's links. -#}
    {%- set neighbours = {} -%}
    {%- for link in _profile_links(first.profile_id) -%}
        {%- do neighbours.setdefault(link.a, []).append((link.b, link.evidence)) -%}
        {%- do neighbours.setdefault(link.b, []).append((link.a, link.evidence)) -%}
    {%- endfor -%}
    {%- set came_from = {first.key: none} -%}
    {%- set frontier = [first.key] -%}
    {%- for _ in range(1000) if frontier and second.key not in came_from -%}
        {%- set next_frontier = [] -%}
        {%- for node in frontier -%}
            {%- for neighbour, evidence in neighbours.get(node, []) if neighbour not in came_from -%}
                {%- do came_from.update({neighbour: (node, evidence)}) -%}
                {%- do next_frontier.append(neighbour) -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- do frontier.clear() -%}{%- do frontier.extend(next_frontier) -%}
    {%- endfor -%}
    {%- set hops = [] -%}
    {%- set cursor = namespace(node=second.key) -%}
    {%- for _ in range(1000) if came_from.get(cursor.node) is not none -%}
        {%- set previous, evidence = came_from[cursor.node] -%}
        {%- do hops.insert(0, "  " ~ previous ~ "  --  " ~ cursor.node ~ "   " ~ evidence) -%}
        {%- set cursor.node = previous -%}
    {%- endfor -%}
    {%- do print(first.key ~ " and " ~ second.key ~ " are one person, " ~ first.profile_id ~ ", through "
                 ~ hops | length ~ " link(s):") -%}
    {%- for hop in hops -%}{%- do print(hop) -%}{%- endfor -%}
{% endmacro %}

{% macro _resolve_identifier(text) %}
    {%- set prefix, colon, rest = (text | string).partition(':') -%}
    {%- set prefix = prefix | trim -%}
    {%- set prefix = prefix if prefix in identifier_types() else prefix | lower -%}
    {%- if colon and prefix in identifier_types() -%}
        {%- set type, value = prefix, rest -%}
    {%- else -%}
        {%- set type, value = none, text | string -%}
    {%- endif -%}
    {%- set found = run_query(find_identifiers_sql(value, type) ~ " limit 1") -%}
    {%- if found.rows | length == 0 -%}
        {{ exceptions.raise_compiler_error("no such identifier in any profile (give type:value, e.g. email:dana@example.com, or a value as `identity-warehouse lookup` takes it)") }}
    {%- endif -%}
    {%- set row = found.rows[0] -%}
    {{ return({'key': row[0] ~ ':' ~ row[1], 'value': row[1], 'profile_id': row[2]}) }}
{% endmacro %}

{#- The profile's links, one per pair of identifiers, with the first message that makes it. -#}
{% macro _profile_links(profile_id) %}
    {%- set rows = run_query(
        "select a, b, first_at, messages, message_id, file_path, line_number from ("
        ~ " select from_type || ':' || from_value as a, to_type || ':' || to_value as b, event_at as first_at,"
        ~ " count(*) over (partition by from_type, from_value, to_type, to_value) as messages,"
        ~ " message_id, file_path, line_number, row_number() over (partition by from_type, from_value, to_type,"
        ~ " to_value order by event_at, message_id) as evidence_rank from " ~ ref('identity_links')
        ~ " where link_status = 'linked' and from_profile_id = " ~ string_literal(profile_id) ~ ") as ranked"
        ~ " where evidence_rank = 1 order by first_at, a, b").rows -%}
    {%- set links = [] -%}
    {%- for row in rows -%}
        {%- do links.append({'a': row[0], 'b': row[1], 'evidence': "message " ~ row[4] ~ " (" ~ row[5] ~ ":" ~ row[6]
                             ~ ", " ~ row[2] ~ (", and " ~ (row[3] - 1) ~ " more" if row[3] > 1 else "") ~ ")"}) -%}
    {%- endfor -%}
    {{ return(links) }}
{% endmacro %}
