{#- Reading the identity rules (`vars: identity_rules` in dbt_project.yml). -#}

{% macro identity_rules() %}
    {{ return(var('identity_rules')) }}
{% endmacro %}

{% macro identifier_types() %}
    {{ return(identity_rules()['identifier_types']) }}
{% endmacro %}

{#- The identifier priority from the rules, as a SQL expression over a type column. -#}
{% macro identifier_priority(type_expr) -%}
    case {{ type_expr }}
        {%- for type, rule in identifier_types().items() %}
        when '{{ type }}' then {{ rule['priority'] }}
        {%- endfor %}
        else 99
    end
{%- endmacro %}

{#- The order of identifiers, oldest first (a profile is named after its first, merge protection
    decides by it): first sighting, then priority, type and value, over the columns of `alias`. -#}
{% macro identifier_age_order(alias) -%}
    {{ alias }}.first_seen_at, {{ identifier_priority(alias ~ '.identifier_type') }}, {{ alias }}.identifier_type,
        {{ alias }}.identifier_value
{%- endmacro %}

{#- The per-profile limit of a type, as a SQL expression over a type column. -#}
{% macro identifier_limit(type_expr) -%}
    case {{ type_expr }}
        {%- for type, rule in identifier_types().items() %}
        when '{{ type }}' then {{ rule.get('max_per_profile', 1000000) }}
        {%- endfor %}
        else 1000000
    end
{%- endmacro %}

{#- The value a rule's source names, read from int_messages; null when the message has none. -#}
{% macro identifier_source_value(source) -%}
    {%- set kind, _, path = source.partition('.') -%}
    {%- if source == 'userId' -%} user_id
    {%- elif source == 'anonymousId' -%} anonymous_id
    {%- elif kind == 'traits' -%}
        {#- identify traits or context.traits; the traits a landing source's staging model maps (a contact
            list's other columns are read by column.<name>) -#}
        case when source <> 'contacts' then {{ json_get_string('traits', '$.' ~ path) }} end
    {%- elif kind == 'context' -%}
        {{ json_get_string('context', '$.' ~ path) }}
    {%- elif kind == 'column' -%}
        {#- a header as ingestion keys it, snake_cased (identity_rules.snake_case): `column.CRM ID` is crm_id -#}
        {%- set column = modules.re.sub('[^0-9a-z]+', '_', path.strip().lower()).strip('_') or 'column' -%}
        {%- if column == 'email' -%} contact_email
        {%- elif column == 'phone' -%} contact_phone
        {%- else -%} case when source = 'contacts' then {{ json_get_string('traits', '$.' ~ column) }} end
        {%- endif -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("identity_rules: unknown identifier source '" ~ source ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{#- A fingerprint of the rules that decide int_identifiers' rows (sources, normalisation,
    blocklists) and the priorities that choose each message's anchor in profile_events (not limits
    or junk thresholds: they change profiles, which later builds follow anyway): an incremental
    build under other rules recomputes every row, and so every message's profile. -#}
{% macro identifier_rules_fingerprint() %}
    {%- set rules = identity_rules() -%}
    {%- set types = {} -%}
    {%- for type, rule in identifier_types().items() -%}
        {%- do types.update({type: [rule.get('normalize', 'id'), rule.get('sources', []), rule.get('blocklist', {}),
                                  rule.get('priority')]}) -%}
    {%- endfor -%}
    {{ return(local_md5(tojson([types, rules.get('blocklist', {}), rules.get('default_phone_country_code'),
                                rules.get('national_phone_number_length')], sort_keys=true))) }}
{% endmacro %}

{#- A fingerprint of the whole identity rules: the graph models (int_identity_conflicts,
    int_identity_components) recompute everything under other rules. -#}
{% macro identity_rules_fingerprint() %}
    {{ return(local_md5(tojson(identity_rules(), sort_keys=true))) }}
{% endmacro %}
