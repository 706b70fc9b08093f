"""A short console for ``identity-warehouse run``: dbt's line per model and test stays out of it.

dagster-dbt echoes every line of dbt's output to standard output: about 300 lines a build, START
and OK/PASS for each model and test. Dagster records that output as the step's compute log (the
run's stdout in the UI) and mirrors it to the terminal. ``quiet_stdout`` filters file descriptor 1
of the process below Dagster's capture, so the compute log keeps every line and only the terminal
loses the per-model progress. Warnings, errors, failures and dbt's closing summary are shown in full.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker

# dbt's progress lines of a model or test that went well ("12 of 131 START sql table model ...",
# "12 of 131 OK created sql table model ...", "80 of 131 PASS unique_... [PASS in 0.02s]",
# "SKIP" after a failure, which dbt's summary counts), its preamble, and blank lines.
# WARN, ERROR and FAIL lines, and everything else, are shown.
PROGRESS = re.compile(r"\s*\d+ of \d+ (START|OK|PASS|SKIP|NO-OP)\b")
PREAMBLE = re.compile(r"\s*(Running with dbt=|Registered adapter: |Found \d+ models?, |Concurrency: \d+ threads?)")


VERBOSE_ENV = "IDENTITY_WAREHOUSE_VERBOSE"  # set (to anything but 0 or empty): every line, as dbt prints it


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def shown(line: str) -> bool:
    """Whether a line of the run's standard output reaches the console."""
    return bool(line.strip()) and not PROGRESS.match(line) and not PREAMBLE.match(line)


@contextmanager
def quiet_stdout(keep: Callable[[str], bool] = shown) -> Iterator[None]:
    """While the block runs, only the lines of file descriptor 1 that ``keep`` accepts reach it,
    whoever writes them (Python, a child process, Dagster's tail of its compute log)."""
    # multiprocessing's resource tracker, started on first use (during the build), lives as long as
    # this process and would hold the pipe open: the end of the block would wait for it in vain (10 s).
    # Started here, it keeps the console.
    resource_tracker.ensure_running()
    sys.stdout.flush()
    console = os.dup(1)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as lines, os.fdopen(console, "wb", buffering=0, closefd=False) as out:
            for line in lines:
                if keep(line.decode(errors="replace")):
                    out.write(line)

    forwarding = threading.Thread(target=forward, name="quiet-stdout", daemon=True)
    forwarding.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(console, 1)  # the pipe's last writer here closes: the thread reads to its end
        forwarding.join(timeout=10)  # a child that kept the pipe open must not hold the run's end
        if not forwarding.is_alive():
            os.close(console)
