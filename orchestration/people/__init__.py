"""Tools that answer questions about one person: `lookup` and `explain`."""
