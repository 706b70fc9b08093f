"""What is patched of dagster and dagster-dbt sits in one module (orchestration/location/patches.py),
and a version bump that changes a patched upstream function fails here, naming the entry to revisit."""
import hashlib
import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster_dbt.core import dbt_cli_invocation, dbt_event_iterator

from orchestration.location import dbt_event_stream, patches, recovery
from orchestration.location.project import dbt_resource

PACKAGE = Path(__file__).resolve().parents[2] / "orchestration"
PINNED = {"dagster": "1.13.27", "dagster-dbt": "0.29.27"}
# SHA-256 (first 16 hex digits) of each upstream function's source at the pinned versions, and the
# entry of patches.py's docstring that depends on it.
UPSTREAM = {
    "dagster_dbt.core.dbt_cli_invocation.DbtCliInvocation.run": ("5339aed89294e237", "1 (dbt dies with its run)"),
    "dagster_dbt.core.resource.DbtCliResource._cli_version": ("b06b86a642ba8bcd", "2 (no dbt --version)"),
    "dagster_dbt.core.resource.DbtCliResource._initialize_dbt_core_adapter": ("f033303d9d777bff",
                                                                              "3 (no in-process adapter)"),
    "dagster_dbt.core.resource.DbtCliResource.cli": ("a9ca99daf92597e3", "2 and 3 (where cli() calls them)"),
    "dagster._core.utils.imap": ("b3339eed96c7e619", "4 (imap spins)"),
    "InstanceConcurrencyContext.interval_to_next_pending_claim_check": ("d9b44ab68eb41a99", "5 (slot wait spins)"),
    "InstanceConcurrencyContext.claim": ("8375daa833c671e5", "6 (slots of killed runs)"),
}


def test_the_pins_are_the_versions_the_patches_were_written_for():
    assert {name: importlib.metadata.version(name) for name in PINNED} == PINNED, (
        "dagster or dagster-dbt changed: revisit every entry of orchestration/location/patches.py, then the pins")


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_a_patched_upstream_function_is_as_it_was(name):
    expected, entry = UPSTREAM[name]
    found = hashlib.sha256(inspect.getsource(patches.ORIGINALS[name]).encode()).hexdigest()[:16]
    assert found == expected, f"{name} changed upstream: revisit patch {entry} in orchestration/location/patches.py"


def test_the_upstream_defects_are_still_there():
    """When upstream fixes them, the patch goes."""
    assert "min([0," in inspect.getsource(patches.ORIGINALS["InstanceConcurrencyContext.interval_to_next_pending_claim_check"])
    imap_source = inspect.getsource(patches.ORIGINALS["dagster._core.utils.imap"])
    assert "if len(work_queue) > 0:" in imap_source  # an empty queue is polled again at once
    assert "subprocess.Popen(" in inspect.getsource(patches.ORIGINALS[
        "dagster_dbt.core.dbt_cli_invocation.DbtCliInvocation.run"])
    assert "--version" in inspect.getsource(patches.ORIGINALS["dagster_dbt.core.resource.DbtCliResource._cli_version"])


def test_installed_patches_are_in_place_and_idempotent():
    for _ in range(2):
        patches.install()
        recovery.install()
        dbt_event_stream.install()
    assert dbt_event_iterator.imap is dbt_event_stream.imap_waiting
    assert isinstance(dbt_cli_invocation.subprocess, patches._SubprocessDyingWithParent)
    assert InstanceConcurrencyContext.claim is recovery._claim_releasing_dead_holders
    assert recovery._claim is patches.ORIGINALS["InstanceConcurrencyContext.claim"]  # wraps the original, once
    assert (InstanceConcurrencyContext.interval_to_next_pending_claim_check
            is recovery._interval_to_next_pending_claim_check)
    resource = dbt_resource()
    assert isinstance(resource, patches.DbtCliResourceWithoutRepeatedCosts)
    assert str(resource._cli_version) == importlib.metadata.version("dbt-core")


UPSTREAM_ASSIGNMENT = re.compile(r"^\s*(?:dbt_cli_invocation|dbt_event_iterator|InstanceConcurrencyContext)\.\w+\s*=",
                                 re.MULTILINE)
PRIVATE_OVERRIDE = re.compile(r"def (?:_cli_version|_initialize_dbt_core_adapter)\b")


def test_no_other_module_patches_dagster():
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if path.name != "patches.py"
                 and (UPSTREAM_ASSIGNMENT.search(path.read_text()) or PRIVATE_OVERRIDE.search(path.read_text()))]
    assert offenders == []
