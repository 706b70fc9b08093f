"""A Spark standalone cluster on this machine: a master and workers on loopback, started from the
pyspark package (``bin/spark-class``; the package has no ``sbin/start-*.sh``).

A build sent there (``SPARK_MASTER=spark://...``, read by the ``spark`` target of profiles.yml) runs
its tasks in executor processes of their own, one per worker, so its shuffles cross processes as on
a real cluster, while dbt and the Spark driver stay in the build's process. The workers share this
machine's file system, so the warehouse and landing folders need no other storage.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


@dataclass
class StandaloneCluster:
    master_url: str  # spark://127.0.0.1:PORT: the value of SPARK_MASTER
    ui_url: str  # the master's web UI; its /json/ describes workers and applications
    processes: list[subprocess.Popen] = field(default_factory=list)

    def state(self) -> dict:
        """The master's view: ``aliveworkers``, ``workers`` and ``completedapps`` among others."""
        return _ui_json(self.ui_url)

    def wait_until_idle(self, timeout: float = 60) -> dict:
        """The master's view once no application runs (the master marks a driver that ended as
        finished when it notices)."""
        _wait_for(lambda: not self.state()["activeapps"], timeout, "the Spark applications to end")
        return self.state()

    def worker_states(self) -> list[dict]:
        """Each worker's own view: ``executors`` and ``finishedexecutors`` (with their application ids)."""
        return [_ui_json(worker["webuiaddress"]) for worker in self.state()["workers"]]


def _ui_json(ui_url: str) -> dict:
    with urllib.request.urlopen(f"{ui_url}/json/", timeout=10) as response:
        return json.load(response)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _spark_class(main_class: str, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    spark_class = Path(env["SPARK_HOME"]) / "bin" / "spark-class"
    with log.open("ab") as out:  # the child keeps its own handle
        return subprocess.Popen([str(spark_class), main_class, *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each process group (spark-class execs java), SIGKILL to those still there after 15 s."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


@contextmanager
def standalone_cluster(work_dir: Path, workers: int = 2, cores: int = 1, memory: str = "1g",
                       timeout: float = 180) -> Iterator[StandaloneCluster]:
    """A master and ``workers`` workers of ``cores`` cores and ``memory`` each, up (every worker
    registered) within ``timeout`` seconds; stopped on exit. Their logs and the executors' work
    folders are in ``work_dir``."""
    import pyspark

    work_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(Path(pyspark.__file__).parent), "SPARK_LOCAL_IP": HOST,
           "SPARK_NO_DAEMONIZE": "1"}
    port, ui_port = _free_port(), _free_port()
    cluster = StandaloneCluster(f"spark://{HOST}:{port}", f"http://{HOST}:{ui_port}")
    try:
        cluster.processes.append(_spark_class(MASTER_CLASS, ["--host", HOST, "--port", str(port),
                                                             "--webui-port", str(ui_port)], work_dir / "master.log", env))
        _wait_for(lambda: cluster.state()["status"] == "ALIVE", timeout, "the Spark master", work_dir / "master.log")
        for index in range(workers):
            cluster.processes.append(_spark_class(WORKER_CLASS, [
                cluster.master_url, "--host", HOST, "--cores", str(cores), "--memory", memory, "--webui-port", "0",
                "--work-dir", str(work_dir / f"worker-{index}")], work_dir / f"worker-{index}.log", env))
        _wait_for(lambda: cluster.state()["aliveworkers"] == workers, timeout, f"{workers} Spark workers",
                  work_dir / "worker-0.log")
        yield cluster
    finally:
        _stop(cluster.processes)


def _wait_for(ready, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s:\n{tail}")
