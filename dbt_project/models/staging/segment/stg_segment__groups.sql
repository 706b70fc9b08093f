{{ segment_staging('groups', {
    'group_id': ['string', '$.groupId'],
    'group_traits': ['json', '$.traits'],
}) }}
