{{ segment_staging('pages', {
    'page_name': ['string', '$.name'],
    'page_category': ['string', '$.category'],
    'properties': ['json', '$.properties'],
}) }}
