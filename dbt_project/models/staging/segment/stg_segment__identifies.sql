{{ segment_staging('identifies', {
    'traits': ['json', '$.traits'],
}) }}
