{{ segment_staging('tracks', strings={'event_name': '$.event'}, objects={'properties': '$.properties'}) }}
