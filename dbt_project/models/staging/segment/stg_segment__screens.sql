{{ segment_staging('screens', {
    'screen_name': json_get_string('payload', '$.name'),
    'properties': json_get('payload', '$.properties'),
}) }}
