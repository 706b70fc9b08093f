{{ segment_staging('screens', strings={'screen_name': '$.name'}, objects={'properties': '$.properties'}) }}
