"""The Python package shows the architecture: subpackages by concept, each saying what it owns."""
import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "orchestration"


def test_no_module_sits_loose_in_the_package():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]


def test_every_subpackage_says_what_it_owns():
    packages = [p.parent for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert {p.name for p in packages} >= {"core", "location", "landing", "identity", "computed", "privacy",
                                          "people", "cli", "spark"}
    for package in packages:
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert docstring and len(docstring) > 20, package


def test_domain_code_does_not_import_the_dagster_code_location():
    """The code location calls the domain packages, never the other way round (the CLI runs the job)."""
    for module in PACKAGE.rglob("*.py"):
        part = module.relative_to(PACKAGE).parts[0]
        if part in ("location", "cli", "__init__.py"):
            continue
        assert "orchestration.location" not in module.read_text(), module


def test_make_test_fast_leaves_out_every_end_to_end_test():
    """`make test-fast` (`-m "not e2e"`) runs the unit tests only: tests/e2e/conftest.py marks every
    test under tests/e2e/, whatever its module says."""
    fast = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider",
                           "-m", "not e2e", "tests/e2e"], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=600)
    assert [line for line in fast.stdout.splitlines() if "::" in line] == [], fast.stdout[-2000:]
    deselected = re.search(r"\((\d+) deselected\)", fast.stdout)
    assert deselected and int(deselected.group(1)) > 100, fast.stdout[-2000:]