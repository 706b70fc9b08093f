"""The dbt project as Dagster sees it, and how its manifest gets built."""

from __future__ import annotations

from dagster_dbt import DbtCliResource, DbtProject

from orchestration import settings
from orchestration.computed_compiler import compile_definitions

dbt_project = DbtProject(project_dir=settings.DBT_PROJECT_DIR, profiles_dir=settings.DBT_PROFILES_DIR)


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, dbt_executable=settings.DBT_EXECUTABLE)


def prepare_manifest() -> None:
    """Compile the trait and audience YAML into models, then parse the dbt project into ``target/manifest.json``.

    Dagster's own preparer knows nothing of the YAML; the code location (under ``dagster dev``, or
    when no manifest exists), the main job and the tests call this instead. DuckDB names the database after the file's stem and dbt writes that name into
    the manifest, so resolve ``DUCKDB_PATH`` first.
    """
    settings.duckdb_path()
    compile_definitions(settings.DBT_PROJECT_DIR)
    dbt_resource().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()
