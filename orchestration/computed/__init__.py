"""Computed traits and audiences: reading and checking their YAML definitions, and compiling them into dbt models."""
