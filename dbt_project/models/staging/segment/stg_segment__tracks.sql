{{ segment_staging('tracks', {
    'event_name': json_get_string('payload', '$.event'),
    'properties': json_get('payload', '$.properties'),
}) }}
