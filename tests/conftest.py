"""Shared fixtures. The end-to-end warehouse is built once per session: every dbt or Dagster
invocation costs seconds of start-up."""

from __future__ import annotations

import functools
import os
import resource
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestration.core import settings

SEEDS = settings.SAMPLE_LANDING_DIR
WAREHOUSE_FILE_NAME = settings.DEFAULT_DUCKDB_PATH.name  # dbt names the database after the file stem

settings.quiet_telemetry()
os.environ.pop("DAGSTER_HOME", None)  # tests use ephemeral Dagster instances


@contextmanager
def environment(**values: os.PathLike | str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: str(value) for key, value in values.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value



def pytest_sessionstart(session):
    """Build the dbt manifest before any module imports the dbt assets (collection comes first)."""
    from orchestration.location.project import prepare_manifest

    prepare_manifest()


def copy_dbt_project(destination: Path) -> Path:
    """A copy of the dbt project without its build output: target/, logs/ and the models compiled from
    the definitions (models/computed/, made again from the copy's YAML); macros/computed/ is source."""
    generated = settings.DBT_PROJECT_DIR / "models"

    def leave_out(folder: str, names: list[str]) -> set[str]:
        skipped = {name for name in names if name in ("target", "logs", ".computed.tmp")}
        if Path(folder) == generated and "computed" in names:
            skipped.add("computed")
        return skipped

    shutil.copytree(settings.DBT_PROJECT_DIR, destination, ignore=leave_out)
    return destination


# --- What the shared fixtures cost -------------------------------------------------------------
# Session and module fixtures are where the suite's time goes (a warehouse build each). Their set-up
# is timed here, wall clock and CPU (this process and the children it waited for: dbt,
# `identity-warehouse run`; not Spark's JVM, which PySpark does not wait for), and listed at the end
# of the run; CPU time is the figure to compare on a shared machine, where wall time depends on the
# neighbours. A plugin, not conftest hooks: pytest
# asks a session fixture's hooks of the conftest files above the root folder only.
class FixtureTimes:
    def __init__(self):
        self.times: list[tuple[str, str, float, float]] = []

    @staticmethod
    def cpu_seconds() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        if fixturedef.scope not in ("session", "package", "module"):
            yield
            return
        wall, cpu = time.monotonic(), self.cpu_seconds()
        yield
        where = request.node.nodeid.split("::")[0] if fixturedef.scope == "module" else fixturedef.baseid or "tests"
        self.times.append((f"{where}::{fixturedef.argname}", fixturedef.scope,
                           time.monotonic() - wall, self.cpu_seconds() - cpu))

    def pytest_sessionfinish(self, session):
        worker_output = getattr(session.config, "workeroutput", None)
        if worker_output is not None:  # an xdist worker: the controller prints every worker's times
            worker = os.environ.get("PYTEST_XDIST_WORKER", "")
            worker_output["fixture_times"] = [(f"{worker} {name}", *rest) for name, *rest in self.times]

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        self.times += [tuple(times) for times in getattr(node, "workeroutput", {}).get("fixture_times", [])]

    def pytest_terminal_summary(self, terminalreporter):
        slow = sorted((t for t in self.times if t[2] >= 1.0), key=lambda t: -t[2])
        if slow:
            terminalreporter.write_sep("=", "shared fixture setup: wall s, CPU s (with waited children)")
            for name, scope, wall, cpu in slow:
                terminalreporter.write_line(f"{wall:8.1f} {cpu:8.1f}  {scope:7} {name}")


def pytest_configure(config):
    config.pluginmanager.register(FixtureTimes(), "identity-warehouse-fixture-times")


# --- Workers (pytest-xdist) ---------------------------------------------------------------------
# `make test` runs on one worker per core, at most MAX_WORKERS (`-n auto` in pyproject.toml): a
# build of the job is mostly one busy core (Python: Dagster, dbt), so one process leaves the other
# core idle much of the time (docs/testing.md has the figures). Each worker is a pytest session of
# its own, which builds the session fixtures its tests use; `--dist loadfile` keeps a file's tests
# on one worker, so a file's fixtures are built once. `pytest -n 0` runs everything in this process.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
    wanted = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    return int(wanted) if wanted else min(MAX_WORKERS, len(os.sched_getaffinity(0)))


# The session fixture several files share: each worker that runs one of those files builds it again.
SHARED_BUILD = "sample_runs"
# The longest file by far (Spark: 11-13 minutes of one worker) starts first, while the other workers
# run the rest (in its place in the collection it started after 6 minutes and ended the run).
STARTED_FIRST = "tests/e2e/test_spark_equivalence.py"


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.nodeid.split("::")[0] != STARTED_FIRST)  # stable: the rest keep their order


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that the files that use the sample's builds (`SHARED_BUILD`) are one
    unit, so one worker builds them (about 45 s a worker beside another) instead of every worker."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedBuildScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return SHARED_BUILD if uses_shared_build(config.rootpath / file) else file

    return SharedBuildScheduling(config, log)


@functools.cache
def uses_shared_build(test_file: Path) -> bool:
    return test_file.suffix == ".py" and SHARED_BUILD in test_file.read_text()
