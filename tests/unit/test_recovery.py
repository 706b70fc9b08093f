"""Runs killed without clean-up release what they held: their Dagster pool slots (orchestration/location/recovery.py),
their dbt child (orchestration/location/project.py) and the shared compile folder is never half-written."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import psutil
import pytest

from orchestration.core import settings
from orchestration.core.locking import writer_lock
from orchestration.location import recovery

INSTANCE_YAML = settings.PROJECT_ROOT / "dagster_home" / "dagster.yaml"


@pytest.fixture
def home(tmp_path) -> Path:
    """A persistent Dagster home with the project's dagster.yaml (the `duckdb` pool of one slot)."""
    path = tmp_path / "dagster_home"
    path.mkdir()
    shutil.copy(INSTANCE_YAML, path / "dagster.yaml")
    return path


def dead_process_tags() -> dict[str, str]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    tags = recovery.owner_tags(child.pid)
    child.kill()
    child.wait()
    return tags


def add_run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, tags: dict[str, str]) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="build_warehouse", run_id=run_id, status=status, tags=tags))
    return run_id


def claimed(instance: dg.DagsterInstance, pool: str) -> set[str]:
    return {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(pool).claimed_slots}


def test_a_killed_runs_slot_is_freed_and_the_run_failed_while_live_runs_keep_theirs(home):
    instance = dg.DagsterInstance.from_config(str(home))
    storage = instance.event_log_storage
    killed = add_run(instance, dg.DagsterRunStatus.STARTED, dead_process_tags())
    # a pid taken over by another process after the run's died (here: this one)
    reused = add_run(instance, dg.DagsterRunStatus.STARTED, {**recovery.owner_tags(), recovery.PROCESS_TAG: "0:1"})
    live = add_run(instance, dg.DagsterRunStatus.STARTED, recovery.owner_tags())
    ended = add_run(instance, dg.DagsterRunStatus.FAILURE, {})
    unknown = add_run(instance, dg.DagsterRunStatus.STARTED, {})  # another job, launched from elsewhere
    # `identity-warehouse run` before runs recorded their process (killed: today's run holds the lock)
    older = add_run(instance, dg.DagsterRunStatus.STARTED, {"identity_warehouse/duckdb_writer": "true"})
    for pool, run_id in [("duckdb", killed), ("p2", reused), ("p3", live), ("p4", ended), ("p5", unknown),
                         ("p6", older)]:
        storage.set_concurrency_slots(pool, 1)
        assert storage.claim_concurrency_slot(pool, run_id, "step", 0).is_claimed

    messages = []
    freed = recovery.release_dead_runs(instance, messages.append)

    assert sorted(freed) == sorted([killed, reused, ended, older])
    assert claimed(instance, "duckdb") == claimed(instance, "p2") == claimed(instance, "p4") == set()
    assert claimed(instance, "p6") == set()
    assert claimed(instance, "p3") == {live} and claimed(instance, "p5") == {unknown}
    status = {run_id: instance.get_run_by_id(run_id).status for run_id in (killed, reused, live, unknown, older)}
    assert status == {killed: dg.DagsterRunStatus.FAILURE, reused: dg.DagsterRunStatus.FAILURE,
                      live: dg.DagsterRunStatus.STARTED, unknown: dg.DagsterRunStatus.STARTED,
                      older: dg.DagsterRunStatus.FAILURE}
    assert any(unknown in message and "Concurrency" in message for message in messages)
    assert recovery.release_dead_runs(instance) == []  # nothing left to do


def test_a_zombie_owner_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    tags = recovery.owner_tags(child.pid)
    deadline = time.monotonic() + 30
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recovery.owner_alive(tags) is False  # exited, not yet reaped
    child.wait()
    assert recovery.owner_alive(tags) is False
    assert recovery.owner_alive(recovery.owner_tags()) is True
    assert recovery.owner_alive({}) is None
    assert recovery.owner_alive({**recovery.owner_tags(), recovery.HOST_TAG: "elsewhere"}) is None


# One op in the `duckdb` pool, run as `identity-warehouse run` runs the job (in process, tagged).
WAITER = """
import dagster as dg
from orchestration.location import recovery
recovery.install()

@dg.op(pool="duckdb")
def step():
    print("step ran", flush=True)

@dg.job
def job():
    step()

print("started", flush=True)
result = job.execute_in_process(instance=dg.DagsterInstance.get(), tags=recovery.owner_tags())
print("success" if result.success else "failure", flush=True)
"""


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_a_step_waiting_for_a_slot_sleeps_and_takes_it_once_its_holder_is_killed(home):
    """The holder is killed while the other run already waits (a run on another warehouse: no
    file lock in between): the waiting step neither spins a core nor waits for ever."""
    instance = dg.DagsterInstance.from_config(str(home))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    holding = add_run(instance, dg.DagsterRunStatus.STARTED, recovery.owner_tags(holder.pid))
    instance.event_log_storage.set_concurrency_slots("duckdb", 1)
    assert instance.event_log_storage.claim_concurrency_slot("duckdb", holding, "build", 0).is_claimed

    env = {**os.environ, "DAGSTER_HOME": str(home)}
    waiter = subprocess.Popen([sys.executable, "-c", WAITER], env=env, cwd=settings.PROJECT_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert waiter.stdout.readline().strip() == "started"
        time.sleep(6)  # the step is blocked on the slot by now
        before = cpu_seconds(waiter.pid)
        time.sleep(4)
        spent = cpu_seconds(waiter.pid) - before
        assert waiter.poll() is None
        assert spent < 1.0, f"the waiting run used {spent:.1f} s of CPU in 4 s"

        holder.kill()
        holder.wait()
        killed_at = time.monotonic()
        output = waiter.communicate(timeout=120)[0]
        resumed_after = time.monotonic() - killed_at
    finally:
        if waiter.poll() is None:
            os.killpg(waiter.pid, signal.SIGKILL)
        holder.kill()
    print(f"waiting: {spent:.2f} s of CPU in 4 s; the step ran {resumed_after:.1f} s after its holder was killed")
    assert "step ran" in output and output.rstrip().endswith("success"), output[-3000:]
    assert resumed_after < 60
    assert instance.get_run_by_id(holding).status == dg.DagsterRunStatus.FAILURE


# Starts a long child through dagster-dbt's subprocess (as DbtCliInvocation starts dbt), prints its pid.
STARTS_A_CHILD = """
import sys, time
import orchestration.location.project
from dagster_dbt.core import dbt_cli_invocation
child = dbt_cli_invocation.subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def test_dbt_started_by_a_run_dies_with_it():
    parent = subprocess.Popen([sys.executable, "-c", STARTS_A_CHILD], cwd=settings.PROJECT_ROOT,
                              stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait()
    try:
        child.wait(timeout=10)  # the kernel kills it with its parent (reaped by init)
    except psutil.TimeoutExpired:
        child.kill()
        pytest.fail("the child outlived its parent")


HOLDS_THE_LOCK_AND_STARTS_A_CHILD = """
import subprocess, sys, time
from pathlib import Path
from orchestration.core.locking import writer_lock
with writer_lock(Path(sys.argv[1])):
    # even asked to keep every descriptor open, the child does not get the lock's
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], close_fds=False)
    print(child.pid, flush=True)
    time.sleep(120)
"""


def test_the_writer_lock_is_not_held_by_a_child_after_its_parent_dies(tmp_path):
    database = tmp_path / "w.duckdb"
    parent = subprocess.Popen([sys.executable, "-c", HOLDS_THE_LOCK_AND_STARTS_A_CHILD, str(database)],
                              cwd=settings.PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        parent.kill()
        parent.wait()
        assert child.is_running()
        started = time.monotonic()
        with writer_lock(database):
            assert time.monotonic() - started < 5
    finally:
        child.kill()


COMPILES = """
import sys
from pathlib import Path
from orchestration.computed.compiler import compile_definitions
for _ in range(int(sys.argv[2])):
    compile_definitions(Path(sys.argv[1]))
"""


def test_compiles_at_the_same_time_from_one_checkout_all_succeed(tmp_path):
    """Runs on two warehouses from one checkout compile the traits and audiences at the same time."""
    project = tmp_path / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR / "definitions", project / "definitions")
    (project / "models").mkdir()
    processes = [subprocess.Popen([sys.executable, "-c", COMPILES, str(project), "15"], cwd=settings.PROJECT_ROOT,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [process.communicate(timeout=300)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], "\n".join(errors)[-3000:]
    models = project / "models"
    assert [path.name for path in models.iterdir()] == ["computed"]
    assert {path.name for path in (models / "computed").iterdir()} >= {"profile_traits.sql", "audience_members.sql"}


def test_compiling_leaves_unchanged_models_alone_and_replaces_changed_ones_whole(tmp_path):
    from orchestration.computed.compiler import compile_definitions

    project = tmp_path / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR / "definitions", project / "definitions")
    (project / "models" / ".computed.tmp").mkdir(parents=True)  # left by an older version
    compile_definitions(project)
    computed = project / "models" / "computed"
    generated = {path.name: path.read_text() for path in computed.iterdir()}
    folder = computed.stat().st_ino

    compile_definitions(project)  # another run's compile: nothing to change, a build reading them undisturbed
    assert computed.stat().st_ino == folder

    (computed / "profile_traits.sql").write_text("edited by hand")
    (computed / "stray.sql").write_text("select 1")
    compile_definitions(project)
    assert {path.name: path.read_text() for path in computed.iterdir()} == generated
    assert [path.name for path in (project / "models").iterdir()] == ["computed"]
    assert not list((project / "target").glob(".computed.*.*"))
