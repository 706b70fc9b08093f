"""The dbt project as Dagster sees it, and how its manifest gets built."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from orchestration.computed.compiler import compile_definitions
from orchestration.core import settings
from orchestration.core.locking import file_lock
from orchestration.location import patches
from orchestration.location.patches import (  # noqa: F401 (without_adapter_in_process: the dbt asset's switch)
    DbtCliResourceWithoutRepeatedCosts,
    without_adapter_in_process,
)

patches.install()  # every patch of dagster and dagster-dbt, before dbt is first started

dbt_project = DbtProject(project_dir=settings.DBT_PROJECT_DIR, profiles_dir=settings.DBT_PROFILES_DIR)


class WarehouseDbtCliResource(DbtCliResourceWithoutRepeatedCosts):
    """dagster-dbt's resource (without its repeated costs: orchestration/location/patches.py) that
    records the run's process at its start."""

    def setup_for_execution(self, context) -> None:
        super().setup_for_execution(context)
        from orchestration.location.resources import start_run  # a run of dbt assets alone has no Warehouse resource
        start_run(context)


def dbt_resource() -> DbtCliResource:
    return WarehouseDbtCliResource(project_dir=dbt_project, dbt_executable=settings.DBT_EXECUTABLE)


# What the manifest is made from: when none of it changed, the manifest on disk is current.
MANIFEST_INPUTS = ["dbt_project.yml", "models", "macros", "tests", "definitions"]


def manifest_fingerprint() -> str:
    """SHA-256 over the dbt project's sources, the profile and the database name (the DuckDB file's
    stem, which dbt writes into the manifest; the rest of the path is not in it, so a warehouse moved
    or made anew under the same file name keeps the manifest)."""
    digest = hashlib.sha256(f"{settings.duckdb_path().stem}\0{settings.DBT_PROJECT_DIR}\n".encode())
    files = [settings.DBT_PROFILES_DIR / "profiles.yml"]
    for name in MANIFEST_INPUTS:
        path = settings.DBT_PROJECT_DIR / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for path in files:
        if path.exists():
            digest.update(f"{path}\0".encode() + path.read_bytes())
    return digest.hexdigest()


MACRO_DEFINITION = re.compile(r"{%-?\s*macro\s+(\w+)\s*\(")
MACRO_HOMES_FILE = "macro_homes.fingerprint"


def macro_homes_fingerprint(project_dir: Path) -> str:
    """SHA-256 over which file defines each macro. dbt's partial parse loses a macro moved to another
    file (it adds the new file's macro, then deletes the old file's one: the same unique id), so a
    change of homes must start from a full parse."""
    homes = sorted((str(path.relative_to(project_dir)), name)
                   for path in (project_dir / "macros").rglob("*.sql")
                   for name in MACRO_DEFINITION.findall(path.read_text()))
    return hashlib.sha256(repr(homes).encode()).hexdigest()


def forget_partial_parse_if_macros_moved(project_dir: Path, target: Path) -> bool:
    """Remove ``target/partial_parse.msgpack``, and every warehouse's, when a macro changed files
    since they were written."""
    record, homes = target / MACRO_HOMES_FILE, macro_homes_fingerprint(project_dir)
    moved = record.exists() and record.read_text() != homes
    if moved or not record.exists():
        (target / PARTIAL_PARSE_FILE).unlink(missing_ok=True)
        shutil.rmtree(target / PARTIAL_PARSE_BY_WAREHOUSE, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    record.write_text(homes)
    return moved


def prepare_manifest() -> None:
    """Compile the trait and audience YAML into models, then parse the dbt project into ``target/manifest.json``,
    unless the manifest was already made from the same sources (``dbt parse`` costs seconds per run).

    Dagster's own preparer knows nothing of the YAML; the code location (under ``dagster dev``, or
    when no manifest exists), the main job and the tests call this instead. DuckDB names the database
    after the file's stem and dbt writes that name into the manifest, so resolve ``DUCKDB_PATH`` first.
    """
    settings.duckdb_path()
    # Runs on other warehouses from this checkout share the generated models and the manifest.
    with file_lock(dbt_project.manifest_path.with_name(".manifest.lock")):
        compile_definitions(settings.DBT_PROJECT_DIR)
        fingerprint_file = dbt_project.manifest_path.with_name("manifest.fingerprint")
        fingerprint = manifest_fingerprint()
        if (dbt_project.manifest_path.exists() and fingerprint_file.exists()
                and fingerprint_file.read_text() == fingerprint):
            return
        forget_partial_parse_if_macros_moved(settings.DBT_PROJECT_DIR, dbt_project.manifest_path.parent)
        dbt_resource().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()
        fingerprint_file.write_text(fingerprint)


PARTIAL_PARSE_FILE = "partial_parse.msgpack"
# The partial-parse file of each warehouse's last build, by a hash of the warehouse file's path.
PARTIAL_PARSE_BY_WAREHOUSE = "partial_parse_by_warehouse"
# dagster-dbt gives every build a target folder of its own (manifest, run_results.json, compiled SQL
# and the debug log: about 8 MB); an hourly schedule would fill the disk. A day of them is kept, and
# the partial-parse files of as many warehouses.
BUILD_FOLDERS_KEPT = 24


def build_folder(run_id: str) -> Path:
    """The folder dagster-dbt gave a Dagster run's dbt build, ``target/<asset>-<run id prefix>-<hash>/``
    (the newest, if the run built more than once)."""
    target = dbt_project.project_dir / dbt_project.target_path
    folders = sorted(target.glob(f"*-{run_id[:7]}-*"), key=lambda path: path.stat().st_mtime)
    if not folders:
        raise FileNotFoundError(f"no dbt build folder for run {run_id}")
    return folders[-1]


def _warehouse_partial_parse(target: Path, warehouse: Path) -> Path:
    return target / PARTIAL_PARSE_BY_WAREHOUSE / f"{hashlib.sha256(str(warehouse).encode()).hexdigest()[:16]}.msgpack"


def new_build_folder(target: Path, name: str, run_id: str, warehouse: Path) -> Path:
    """A target folder of its own for one dbt command of a run, named as dagster-dbt names them
    (``<name>-<run id prefix>-<random>``, which ``build_folder`` finds), holding the partial-parse
    file of ``warehouse``'s last build when one is kept (dagster-dbt then copies the project's
    file, which the last build of any warehouse wrote, only for a warehouse never built)."""
    folder = target / f"{name}-{run_id[:7]}-{uuid.uuid4().hex[:7]}"
    kept = _warehouse_partial_parse(target, warehouse)
    if kept.exists():
        folder.mkdir(parents=True)
        shutil.copyfile(kept, folder / PARTIAL_PARSE_FILE)
    return folder


def keep_build_state(build_target: Path, build_folder_glob: str, warehouse: Path, kept: int = BUILD_FOLDERS_KEPT) -> None:
    """After a build of ``warehouse`` in ``build_target`` (a folder in the project's target folder):
    carry its partial-parse file back to the target folder and to the warehouse's own place there,
    and remove all but the newest ``kept`` build folders that match ``build_folder_glob``, and all but
    the ``kept`` warehouses' partial-parse files written last.

    dagster-dbt copies ``target/partial_parse.msgpack`` into each build's folder but never back. dbt
    parses the whole project again (6 s more per build) when the file was written for another profile
    (the DuckDB path, its memory limit or temp folder: any other warehouse or setting), so without the
    copy every build with other settings than the last ``dbt parse`` paid for a full parse; and
    without one file per warehouse, so did every build after a build of another warehouse from the
    same checkout (two teams' warehouses, or the test suite's workers).
    """
    project_target = build_target.parent
    built = build_target / PARTIAL_PARSE_FILE
    if built.exists():
        for destination in (project_target / PARTIAL_PARSE_FILE, _warehouse_partial_parse(project_target, warehouse)):
            destination.parent.mkdir(exist_ok=True)
            staged = destination.with_name(f".{destination.name}.{os.getpid()}")
            shutil.copyfile(built, staged)
            os.replace(staged, destination)  # never a half-written file
    for folder in _all_but_newest([path for path in project_target.glob(build_folder_glob) if path.is_dir()], kept):
        shutil.rmtree(folder, ignore_errors=True)
    for stale in _all_but_newest(list((project_target / PARTIAL_PARSE_BY_WAREHOUSE).glob("*.msgpack")), kept):
        stale.unlink(missing_ok=True)


def _all_but_newest(paths: list[Path], kept: int) -> list[Path]:
    def modified(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:  # removed meanwhile by a build of another warehouse
            return -1
    return sorted(paths, key=modified, reverse=True)[kept:]
