"""Plans that grow with the data, not faster: DuckDB keeps (materializes) a CTE that several branches
of a query read. A CTE that only filters a large table is scanned again by each reader instead
(``unmaterialized_cte``): a kept copy of every event or identifier outgrew a 3 GB limit at 5 M people
and spilled to disk (benchmarks/README.md)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import duckdb

from orchestration.core import settings
from tests.conftest import WAREHOUSE_FILE_NAME

# model → its CTE that filters a large table and several branches read (as a full build compiles it)
SCANNED_AGAIN = {
    "traits__engagement": "events",
    "traits__commerce": "events",
    "audience__cart_abandoners": "events",
    "int_identity_conflicts": "linkable",
    "int_identity_junk": "linkable",
    "int_identity_edges": "identifiers",
    "int_message_duplicates": "copies",
}


def kept_ctes(plan: str) -> set[str]:
    return set(re.findall(r"CTE Name: (\w+)", plan))


def test_ctes_that_filter_a_large_table_are_scanned_again_not_kept(sample_runs, tmp_path):
    database = tmp_path / "warehouse" / WAREHOUSE_FILE_NAME  # compiled on a copy: nothing writes the shared one
    database.parent.mkdir()
    shutil.copy(sample_runs.database, database)
    target = tmp_path / "target"
    subprocess.run([settings.DBT_EXECUTABLE, "compile", "--quiet", "--full-refresh", "--select", *SCANNED_AGAIN,
                    "--target-path", str(target), "--profiles-dir", str(settings.DBT_PROFILES_DIR)],
                   cwd=settings.DBT_PROJECT_DIR, check=True, timeout=900, env={**os.environ, "DUCKDB_PATH": str(database)})
    kept = {}
    with duckdb.connect(str(database), read_only=True) as conn:
        for model, cte in SCANNED_AGAIN.items():
            compiled = next((target / "compiled").rglob(f"{model}.sql")).read_text()
            assert re.search(rf"^{cte} as ", compiled, re.MULTILINE), model  # the CTE is still there
            # the model's own compiled query: EXPLAIN takes a statement, not a parameter
            kept[model] = kept_ctes(conn.execute(f"explain {compiled}").fetchall()[0][1])
            assert cte not in kept[model], model
    # the plans do name the CTEs DuckDB keeps: junk detection's pair counts are computed once
    assert "counted" in kept["int_identity_conflicts"]
