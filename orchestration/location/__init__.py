"""The Dagster code location: definitions, assets, asset checks, jobs, schedules, sensors and resources, and how they drive dbt."""
