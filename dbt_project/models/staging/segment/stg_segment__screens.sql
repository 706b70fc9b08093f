{{ segment_staging('screens', {
    'screen_name': ['string', '$.name'],
    'properties': ['json', '$.properties'],
}) }}
