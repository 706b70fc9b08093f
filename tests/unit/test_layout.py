"""The Python package shows the architecture: subpackages by concept, each saying what it owns."""
import ast
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


def test_every_end_to_end_module_is_marked_e2e():
    """`make test-fast` (`-m "not e2e"`) runs the unit tests only: a module under tests/e2e/ without
    the mark would build warehouses there."""
    unmarked = []
    for module in sorted((PACKAGE.parent / "tests" / "e2e").glob("test_*.py")):
        marks = [node.value for node in ast.parse(module.read_text()).body
                 if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)]
        if not any(isinstance(n, ast.Attribute) and n.attr == "e2e" for mark in marks for n in ast.walk(mark)):
            unmarked.append(module.name)
    assert unmarked == []
