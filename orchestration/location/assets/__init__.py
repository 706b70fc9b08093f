"""The assets of the graph: landing, the dbt models, privacy requests and audience exports."""
