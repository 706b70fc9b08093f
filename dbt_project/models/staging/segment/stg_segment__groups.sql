{{ segment_staging('groups', strings={'group_id': '$.groupId'}, objects={'group_traits': '$.traits'}) }}
