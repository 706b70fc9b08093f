"""A run killed at any moment (``kill -9``, a closed laptop, the OOM killer) never blocks the next one.

Dagster keeps the state of a run in ``DAGSTER_HOME``: a run killed without clean-up stays STARTED
for ever and keeps the slot of the ``duckdb`` pool its step held (dagster_home/dagster.yaml), so every
later run waits for that slot for ever. Dagster's own run monitoring cannot tell such a run is dead
(the default run launcher has no health check, and ``identity-warehouse run`` has no launcher at all).

Every run records the process that executes it in its tags (host, pid and the process's start, so a
reused pid is not taken for it). At the start of each run, and while a step waits for a slot,
``release_dead_runs`` marks the runs of this host whose process is gone as failed and frees their
slots, and frees the slots still held by runs that ended.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import dagster as dg
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

HOST_TAG = "identity_warehouse/run_host"
PID_TAG = "identity_warehouse/run_pid"
PROCESS_TAG = "identity_warehouse/run_process"  # boot id and start time of the pid: tells a reused pid apart
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
SWEEP_WHILE_WAITING_SECONDS = 10.0  # how often a step waiting for a slot looks for dead holders


def process_token(pid: int) -> str:
    """Identifies one process for the life of the machine: boot id and start time (Linux); "" elsewhere."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot, open(f"/proc/{pid}/stat") as stat:
            # the command name (field 2) may hold spaces and parentheses: fields are counted after its ")"
            fields = stat.read().rsplit(")", 1)[1].split()
            return f"{boot.read().strip()}:{fields[19]}"
    except (OSError, IndexError):
        return ""


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """The tags naming the process that executes a run (this one unless ``pid`` is given)."""
    pid = os.getpid() if pid is None else pid
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PROCESS_TAG: process_token(pid)}


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def owner_alive(tags: Mapping[str, str]) -> bool | None:
    """Whether the process named in a run's tags still runs; None when unknown (no tags, another host)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _zombie(pid):  # killed, not yet reaped by its parent: holds nothing any more
        return False
    recorded = tags.get(PROCESS_TAG, "")
    return not recorded or process_token(pid) in ("", recorded)


def record_owner(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tags the run with this process, unless it already names it (``identity-warehouse run`` tags
    its run when it creates it)."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.tags.get(PID_TAG) != str(os.getpid()):
        instance.add_run_tags(run_id, owner_tags())


def release_dead_runs(instance: dg.DagsterInstance, log: Callable[[str], None] | None = None) -> list[str]:
    """Marks the in-progress runs of this host whose process is gone as failed, frees their pool slots
    and the slots held by runs that ended; returns the ids of the runs whose slots were freed."""
    log = log or (lambda message: None)
    freed = []
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        if owner_alive(run.tags) is not False and not _before_owner_tags(run):
            continue
        instance.report_run_failed(run, f"the process of this run (pid {run.tags.get(PID_TAG, 'not recorded')}) "
                                        "is gone: killed without clean-up; marked failed by the next run")
        _free(instance, run.run_id)
        freed.append(run.run_id)
        log(f"run {run.run_id} was killed without clean-up: marked failed, its concurrency slots freed")
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return freed
    holders = set()
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        holders |= {slot.run_id for slot in info.claimed_slots} | {step.run_id for step in info.pending_steps}
    for run_id in sorted(holders - set(freed)):
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            _free(instance, run_id)
            freed.append(run_id)
            log(f"run {run_id} ended ({run.status.value if run else 'deleted'}) but held a concurrency slot: freed")
        elif owner_alive(run.tags) is None:
            log(f"run {run_id} holds a concurrency slot and records no process of this host: if it is not "
                f"running, `dagster run delete {run_id}` or the Dagster UI (Deployment → Concurrency) frees it")
    return freed


def _before_owner_tags(run: dg.DagsterRun) -> bool:
    """A run of ``identity-warehouse run`` from a version that did not record its process: the job's
    writer tag (orchestration/location/jobs.py WRITER_TAG), executed in the process that created it (no code
    location origin), no process recorded. Once this version is installed, such a run can only be
    going on if an older checkout's run was still running at the upgrade; the worst then is a run
    marked failed that goes on (writers of one DuckDB file stay serialised by the writer lock)."""
    return (PID_TAG not in run.tags and run.remote_job_origin is None
            and run.tags.get("identity_warehouse/duckdb_writer") == "true")


def _free(instance: dg.DagsterInstance, run_id: str) -> None:
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def start_run(instance: dg.DagsterInstance, run_id: str, log: Callable[[str], None] | None = None) -> None:
    """At the start of a run, in the process that executes it: record it as the run's owner, then
    release the runs killed before."""
    record_owner(instance, run_id)
    release_dead_runs(instance, log)


# dagster 1.13: InstanceConcurrencyContext.interval_to_next_pending_claim_check returns
# min([0, ...]), never above 0, so a step waiting for a pool slot re-checks in a busy loop (a whole
# core) instead of sleeping until its next claim attempt.
def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    if not self._pending_claims or not self._pending_timeouts:
        return 0.0
    now = time.time()
    return max(0.0, min(ready_at - now for ready_at in self._pending_timeouts.values()))


_claim = InstanceConcurrencyContext.claim  # the original (patches.py installs the wrapper below)
_last_sweep = [0.0]


def _claim_releasing_dead_holders(self: InstanceConcurrencyContext, concurrency_key: str, step_key: str,
                                  step_priority: int = 0) -> bool:
    """A step waiting for a slot frees, every few seconds, the slots of runs killed while it waited."""
    if _claim(self, concurrency_key, step_key, step_priority):
        return True
    if time.monotonic() - _last_sweep[0] >= SWEEP_WHILE_WAITING_SECONDS:
        _last_sweep[0] = time.monotonic()
        if release_dead_runs(self._instance):
            self._pending_timeouts[step_key] = 0.0  # claim again now, not after the back-off
            return _claim(self, concurrency_key, step_key, step_priority)
    return False


def install() -> None:
    """Patches Dagster's slot wait (above; orchestration/location/patches.py installs every patch); idempotent."""
    from orchestration.location import patches

    patches.install()
