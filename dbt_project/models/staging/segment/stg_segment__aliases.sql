{{ segment_staging('aliases', strings={'previous_id': '$.previousId'}) }}
