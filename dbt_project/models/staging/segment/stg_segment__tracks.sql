{{ segment_staging('tracks', {
    'event_name': ['string', '$.event'],
    'properties': ['json', '$.properties'],
}) }}
