"""Pure helpers that turn run configuration into dbt command-line arguments."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

# The form of the `as_of` var (macros/computed/as_of.sql checks the same): a date, or a date and time.
AS_OF = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?")


def check_vars(dbt_vars: Mapping[str, Any]) -> None:
    """Refuses vars that would reach SQL malformed: ``as_of`` must be a real date or timestamp,
    ``verify_scope`` written or all."""
    if dbt_vars.get("verify_scope", "written") not in ("written", "all"):
        raise ValueError("verify_scope must be written (the rows the build wrote) or all (every row)")
    as_of = dbt_vars.get("as_of")
    if as_of is None:
        return
    text = str(as_of)
    try:
        if not AS_OF.fullmatch(text):
            raise ValueError
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("as_of must be a date or timestamp such as 2024-06-01 or 2024-06-01T09:30:00") from None


def dbt_build_args(full_refresh: bool = False, dbt_vars: Mapping[str, Any] | None = None,
                   unit_tests: bool = True, exclude: Sequence[str] = ()) -> list[str]:
    """Arguments of the ``dbt build`` that materializes the models and runs their tests (data tests
    always; unit tests unless ``unit_tests`` is false), but the models named in ``exclude`` (and
    their tests).

    Selection is left to dagster-dbt, which adds ``--select`` for the assets of the run.
    """
    args = ["build"]
    if full_refresh:
        args.append("--full-refresh")
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    if exclude:
        args += ["--exclude", " ".join(sorted(exclude))]
    if dbt_vars:
        check_vars(dbt_vars)
        # JSON is valid YAML, and keeps values like "1" (a phone country code) strings.
        args += ["--vars", json.dumps(dict(dbt_vars), sort_keys=True)]
    return args


# The dbt var that says what data tests read (dbt_project/macros/incremental/verify_scope.sql): `written`, the
# default, the rows the build wrote; `all`, every row of every table.
VERIFY_SCOPE = "verify_scope"


def dbt_verify_args(dbt_vars: Mapping[str, Any] | None = None) -> list[str]:
    """Arguments of the ``dbt test`` that verifies the whole warehouse: every data test (no unit
    test: they test the SQL on fixtures, not the data) over every row (``verify_scope: all``)."""
    verify_vars = {**(dbt_vars or {}), VERIFY_SCOPE: "all"}
    check_vars(verify_vars)
    return ["test", "--select", "test_type:data", "--vars", json.dumps(verify_vars, sort_keys=True)]


def unit_tests_version(project_fingerprint: str, dbt_vars: Mapping[str, Any] | None,
                       packages: Mapping[str, str]) -> str:
    """What a dbt unit test's outcome depends on: the project's sources, the run's vars and the
    versions of dbt and the database. Their inputs are fixtures, so with all of these unchanged a
    unit test that passed passes again."""
    described = json.dumps({"project": project_fingerprint, "vars": dict(dbt_vars or {}),
                            "packages": dict(packages)}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()
