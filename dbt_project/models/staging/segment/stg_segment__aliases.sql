{{ segment_staging('aliases', {
    'previous_id': json_get_string('payload', '$.previousId'),
}) }}
