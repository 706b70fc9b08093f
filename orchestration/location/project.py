"""The dbt project as Dagster sees it, and how its manifest gets built."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.core import dbt_cli_invocation
from packaging import version

from orchestration.computed.compiler import compile_definitions
from orchestration.core import settings
from orchestration.core.locking import file_lock

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # looked up before any fork: the child only calls it


def dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when the thread that started it ends
    (Linux; None elsewhere). dbt holds the DuckDB file while it runs: killed with its parent, it never
    outlives the run and makes the next one fail on DuckDB's lock. The thread matters: dbt is started
    from the step's thread, which waits for it to end."""
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above: no signal will come
            os._exit(1)
    return preexec


class _SubprocessDyingWithParent:
    """``subprocess`` as dagster-dbt's DbtCliInvocation sees it: its ``Popen`` (the one that starts
    dbt; dagster-dbt offers no hook for it) makes children that die with their parent."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs) -> subprocess.Popen:  # noqa: N802 (subprocess's name)
        if kwargs.get("preexec_fn") is None:
            kwargs["preexec_fn"] = dies_with_parent()
        return subprocess.Popen(*args, **kwargs)


dbt_cli_invocation.subprocess = _SubprocessDyingWithParent()

dbt_project = DbtProject(project_dir=settings.DBT_PROJECT_DIR, profiles_dir=settings.DBT_PROFILES_DIR)


# dagster-dbt opens a dbt adapter in this process (3 s) before each command, only for
# fetch_column_metadata(): a build that does not fetch it goes without.
_adapter_in_process: ContextVar[bool] = ContextVar("adapter_in_process", default=True)


@contextmanager
def without_adapter_in_process() -> Iterator[None]:
    token = _adapter_in_process.set(False)
    try:
        yield
    finally:
        _adapter_in_process.reset(token)


class WarehouseDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two costs of every build: `dbt --version` (5 s; the project's
    dbt is the dbt-core installed beside this Python) and, when not needed, the in-process adapter."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if self.dbt_executable != settings.DBT_EXECUTABLE:
            return super()._cli_version
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return super()._initialize_dbt_core_adapter(args) if _adapter_in_process.get() else None

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
        dbt_resource().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()
        fingerprint_file.write_text(fingerprint)


PARTIAL_PARSE_FILE = "partial_parse.msgpack"
# dagster-dbt gives every build a target folder of its own (manifest, run_results.json, compiled SQL
# and the debug log: about 8 MB); an hourly schedule would fill the disk. A day of them is kept.
BUILD_FOLDERS_KEPT = 24


def build_folder(run_id: str) -> Path:
    """The folder dagster-dbt gave a Dagster run's dbt build, ``target/<asset>-<run id prefix>-<hash>/``
    (the newest, if the run built more than once)."""
    target = dbt_project.project_dir / dbt_project.target_path
    folders = sorted(target.glob(f"*-{run_id[:7]}-*"), key=lambda path: path.stat().st_mtime)
    if not folders:
        raise FileNotFoundError(f"no dbt build folder for run {run_id}")
    return folders[-1]


def keep_build_state(build_target: Path, build_folder_glob: str, kept: int = BUILD_FOLDERS_KEPT) -> None:
    """After a build in ``build_target`` (a folder in the project's target folder): carry its
    partial-parse file back to the target folder, and remove all but the newest ``kept`` build folders
    there that match ``build_folder_glob``.

    dagster-dbt copies ``target/partial_parse.msgpack`` into each build's folder but never back. dbt
    parses the whole project again (6 s more per build) when the file was written for another profile
    (the DuckDB path, its memory limit or temp folder: any other warehouse or setting), so without the
    copy every build with other settings than the last ``dbt parse`` paid for a full parse.
    """
    project_target = build_target.parent
    built = build_target / PARTIAL_PARSE_FILE
    if built.exists():
        staged = project_target / f".{PARTIAL_PARSE_FILE}.{os.getpid()}"
        shutil.copyfile(built, staged)
        os.replace(staged, project_target / PARTIAL_PARSE_FILE)  # never a half-written file
    folders = sorted((path for path in project_target.glob(build_folder_glob) if path.is_dir()),
                     key=lambda path: path.stat().st_mtime, reverse=True)
    for folder in folders[kept:]:
        shutil.rmtree(folder, ignore_errors=True)
