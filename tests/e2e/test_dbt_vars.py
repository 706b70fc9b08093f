"""The `as_of` var reaches SQL as a literal: dbt itself refuses one that is not a timestamp, whoever
runs it (the Dagster job checks it first, see tests/unit/test_dbt_args.py; a valid one is used by
tests/e2e/test_traits_and_audiences.py)."""

from __future__ import annotations

import json
import subprocess

from orchestration.core import settings
from tests.conftest import WAREHOUSE_FILE_NAME, environment


def _compile_as_of(tmp_path, as_of: str) -> subprocess.CompletedProcess:
    with environment(DUCKDB_PATH=tmp_path / WAREHOUSE_FILE_NAME):
        return subprocess.run(
            [settings.DBT_EXECUTABLE, "--quiet", "compile", "--inline", "select {{ as_of() }} as as_of",
             "--vars", json.dumps({"as_of": as_of}), "--profiles-dir", str(settings.DBT_PROFILES_DIR),
             "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
            cwd=settings.DBT_PROJECT_DIR, capture_output=True, text=True, timeout=600)


def test_as_of_with_sql_in_it_does_not_compile(tmp_path):
    result = _compile_as_of(tmp_path, "2024-06-01' as timestamp); drop table marts.profiles; --")
    assert result.returncode != 0
    assert "as_of must be a date or timestamp" in result.stdout + result.stderr
