{{ segment_staging('identifies', objects={'traits': '$.traits'}) }}
