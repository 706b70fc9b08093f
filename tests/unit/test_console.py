"""The console of ``identity-warehouse run`` (orchestration/cli/console.py): a line per step and the
summary; dbt's line per model and test stays in the compute log."""

import subprocess
import sys

import pytest

from orchestration.cli import console

# Lines of dbt's output in a build of the sample, as dagster-dbt echoes them.
HIDDEN = [
    "Running with dbt=1.11.16",
    "Registered adapter: duckdb=1.11.1",
    "Found 36 models, 95 data tests, 8 sources, 666 macros, 19 unit tests",
    "Concurrency: 2 threads (target='duckdb')",
    "",
    "1 of 131 START sql incremental model staging.stg_segment__tracks .............. [RUN]",
    "1 of 131 OK created sql incremental model staging.stg_segment__tracks ......... [\x1b[32mOK\x1b[0m in 0.21s]",
    "80 of 131 PASS unique_profiles_profile_id ...................................... [\x1b[32mPASS\x1b[0m in 0.03s]",
    "12 of 150 PASS int_identifiers::identifiers_are_normalised ..................... [\x1b[32mPASS\x1b[0m in 0.3s]",
    "90 of 131 SKIP relation marts.profiles due to ephemeral model status ........... [\x1b[33mSKIP\x1b[0m]",
]
SHOWN = [
    "int_identity_components: recomputing the components of 0 of 1085 identifiers",
    "83 of 131 WARN 3 no_junk_identifiers_detected .................................. [\x1b[33mWARN 3\x1b[0m in 0.02s]",
    "40 of 131 ERROR creating sql table model marts.profiles ........................ [\x1b[31mERROR\x1b[0m in 0.05s]",
    "81 of 131 FAIL 2 unique_profiles_profile_id .................................... [\x1b[31mFAIL 2\x1b[0m in 0.03s]",
    "Finished running 20 incremental models, 13 table models, 95 data tests, 3 view models in 0 hours 0 minutes "
    "and 5.05 seconds (5.05s).",
    "\x1b[33mCompleted with 1 warning:\x1b[0m",
    "Runtime Error in model profiles (models/marts/profiles.sql)",
    "  Binder Error: Referenced column \"x\" not found in FROM clause!",
    "  compiled code at target/x/compiled/identity_warehouse/models/marts/profiles.sql",
    "Done. PASS=130 WARN=1 ERROR=0 SKIP=0 NO-OP=0 TOTAL=131",
]


@pytest.mark.parametrize("line", HIDDEN)
def test_dbt_s_progress_of_a_model_or_test_that_went_well_is_not_shown(line):
    assert not console.shown(line)


@pytest.mark.parametrize("line", SHOWN)
def test_warnings_errors_failures_and_the_summary_are_shown(line):
    assert console.shown(line)


def test_the_filter_holds_for_every_writer_of_the_standard_output():
    """Python and child processes alike (Dagster's compute log reaches the console through a
    ``tail`` process); the process's own standard output, as the command line has it."""
    script = f"""
import subprocess, sys
from orchestration.cli import console
print("before")
with console.quiet_stdout():
    print({HIDDEN[5]!r})
    print({SHOWN[1]!r}, flush=True)
    subprocess.run([sys.executable, "-c", "print({HIDDEN[6]!r}); print({SHOWN[-1]!r})"], check=True)
    print({HIDDEN[7]!r})
print("after")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.splitlines() == ["before", SHOWN[1], SHOWN[-1], "after"]


def test_the_console_is_back_at_once_when_multiprocessing_started_its_resource_tracker_during_the_run():
    """A build's libraries start multiprocessing's resource tracker, a process that lives as long as
    the run's: started inside the block, it held the filtered pipe and every `identity-warehouse run`
    ended 10 s after its summary (the wait for the pipe's end)."""
    script = ("import time; from orchestration.cli.console import quiet_stdout\n"
              "from multiprocessing import resource_tracker\n"
              "started = time.monotonic()\n"
              "with quiet_stdout():\n"
              "    resource_tracker.ensure_running()\n"
              "    print('inside', flush=True)\n"
              "print(f'seconds {time.monotonic() - started:.1f}')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "inside" in result.stdout
    assert float(result.stdout.split("seconds ")[1]) < 5, result.stdout
