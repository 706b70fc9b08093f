{{ segment_staging('pages', {
    'page_name': json_get_string('payload', '$.name'),
    'page_category': json_get_string('payload', '$.category'),
    'properties': json_get('payload', '$.properties'),
}) }}
