{{ segment_staging('identifies', {
    'traits': json_get('payload', '$.traits'),
    'traits_email': json_get_string('payload', '$.traits.email'),
    'traits_phone': json_get_string('payload', '$.traits.phone'),
}) }}
