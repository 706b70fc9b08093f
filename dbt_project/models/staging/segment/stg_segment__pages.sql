{{ segment_staging('pages', strings={'page_name': '$.name', 'page_category': '$.category'}, objects={'properties': '$.properties'}) }}
