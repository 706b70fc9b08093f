"""The writer lock: a second process waits for the first; nested use in one process does not."""

import subprocess
import sys
import time

from orchestration.core.locking import lock_path, writer_lock

HOLD = """
import sys, time
from pathlib import Path
from orchestration.core.locking import writer_lock
with writer_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_process_waits_until_the_first_releases_the_lock(tmp_path):
    database = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(database), "1.5"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    waits = []
    started = time.monotonic()
    with writer_lock(database, waits.append):
        waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert len(waits) == 1 and "waiting for another run" in waits[0]
    assert waited > 0.5
    assert lock_path(database).exists()


def test_the_lock_is_released_when_its_process_is_killed(tmp_path):
    database = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(database), "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(timeout=10)
    started = time.monotonic()
    with writer_lock(database):
        assert time.monotonic() - started < 5


def test_nested_use_in_one_process_does_not_wait_for_itself(tmp_path):
    database = tmp_path / "w.duckdb"
    waits = []
    with writer_lock(database, waits.append):
        with writer_lock(database, waits.append) as waited:
            assert waited == 0.0
    assert waits == []
