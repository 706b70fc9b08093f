{{ segment_staging('groups', {
    'group_id': json_get_string('payload', '$.groupId'),
    'group_traits': json_get('payload', '$.traits'),
}) }}
