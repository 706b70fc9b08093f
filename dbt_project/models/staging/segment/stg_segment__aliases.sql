{{ segment_staging('aliases', {
    'previous_id': ['string', '$.previousId'],
}) }}
