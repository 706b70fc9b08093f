{{ segment_staging('identifies', {
    'traits': json_get('payload', '$.traits'),
}) }}
