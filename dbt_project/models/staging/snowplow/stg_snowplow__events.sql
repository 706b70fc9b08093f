{#- Snowplow enriched events (the Analytics SDK's JSON shape: one event per line, self-describing
    entities as `contexts_<vendor>_<name>_<major>` arrays) in the message shape of int_messages.
    Identity: `user_id` is the user id, `domain_userid` (first-party cookie) the anonymous id, and an
    e-mail in the com.acme/customer entity a trait. -#}
with

source as (

    select * from {{ source('snowplow', 'snowplow') }}

),

renamed as (

    select
        message_id,
        case {{ json_get_string('payload', '$.event') }}
            when 'page_view' then 'page'
            else 'track'
        end as message_type,
        case {{ json_get_string('payload', '$.event') }}
            when 'page_view' then {{ json_get_string('payload', '$.page_title') }}
            when 'struct' then {{ json_get_string('payload', '$.se_category') }} || ' '
                || {{ json_get_string('payload', '$.se_action') }}
            else {{ json_get_string('payload', '$.event_name') }}
        end as event_name,
        -- derived_tstamp is Snowplow's own clock-skew corrected time.
        coalesce(
            {{ parse_timestamp(json_get_string('payload', '$.derived_tstamp')) }},
            {{ parse_timestamp(json_get_string('payload', '$.collector_tstamp')) }},
            loaded_at
        ) as event_at,
        {{ json_get_string('payload', '$.domain_userid') }} as anonymous_id,
        {{ json_get_string('payload', '$.user_id') }} as user_id,
        {{ json_object_of([
            ('email', json_get_string('payload', '$.contexts_com_acme_customer_1[0].email')),
        ]) }} as traits,
        {{ json_object_of([
            ('app_id', json_get_string('payload', '$.app_id')),
            ('page_url', json_get_string('payload', '$.page_url')),
            ('category', json_get_string('payload', '$.se_category')),
            ('action', json_get_string('payload', '$.se_action')),
            ('label', json_get_string('payload', '$.se_label')),
            ('value', json_get('payload', '$.se_value'), 'json'),
        ]) }} as properties,
        {{ json_object_of([
            ('platform', json_get_string('payload', '$.platform')),
            ('ip', json_get_string('payload', '$.user_ipaddress')),
            ('user_agent', json_get_string('payload', '$.useragent')),
            ('session_id', json_get_string('payload', '$.domain_sessionid')),
            ('network_userid', json_get_string('payload', '$.network_userid')),
        ]) }} as context,
        payload,
        load_id,
        file_path,
        line_number,
        loaded_at

    from source

),

deduplicated as (

    {{ deduplicate('renamed', partition_by='message_id', order_by='loaded_at, file_path, line_number') }}

)

select * from deduplicated
