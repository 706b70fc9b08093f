"""Privacy requests on the Spark target find what to erase as the DuckDB erasure does.

On the Spark target the control database holds views of Spark's tables (orchestration/spark/tables.py)
and a delete request resolves the person there, by lineage, then leaves Spark the line keys to
remove (`erasure-pending.json`) before every model is built again from the raw tables. Here the
sample's first build is written out as Spark lays out its Parquet tables (no Spark needed), and the
same delete requests run on the DuckDB warehouse and on the control database over those files: the
lines left to Spark are exactly the raw rows the DuckDB erasure deletes, and the audit says the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from orchestration.core import settings
from orchestration.privacy.requests import process_requests
from orchestration.spark.tables import SPARK_SCHEMAS, raw_table_shapes, show_spark_tables
from tests.conftest import WAREHOUSE_FILE_NAME

REQUESTS = [
    {"request_id": "del-dana", "action": "delete", "identifier": "phone:(415) 555-0101", "requested_by": "dpo@shop.example"},
    {"request_id": "del-noor", "action": "delete", "identifier": "email:Noor.Haddad@Example.com",
     "requested_by": "dpo@shop.example"},
]
SALT = "test-salt"


def _write_as_spark(database: Path, root: Path) -> None:
    """Every table and view of a DuckDB warehouse's Spark schemas as Spark writes a Parquet table (JSON as text)."""
    with duckdb.connect(str(database), read_only=True) as conn:
        relations = conn.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = current_database() "
            f"and table_schema in ({', '.join(repr(s) for s in SPARK_SCHEMAS)})").fetchall()
        for schema, table in relations:
            columns = conn.execute("select column_name, data_type from information_schema.columns where "
                                   "table_schema = ? and table_name = ? order by ordinal_position", [schema, table]).fetchall()
            select = ", ".join(f'cast("{c}" as varchar) as "{c}"' if t == "JSON" else f'"{c}"' for c, t in columns)
            folder = root / "warehouse" / f"{schema}.db" / table
            folder.mkdir(parents=True)
            conn.execute(f"copy (select {select} from \"{schema}\".\"{table}\") to '{folder}/part-00000.parquet' "
                         "(format parquet)")


def _raw_lines(conn) -> dict[str, set[tuple[str, int]]]:
    tables = [name for (name,) in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'raw' and table_name != 'loaded_files'"
    ).fetchall()]
    return {table: set(conn.execute(f'select load_id, line_number from raw."{table}"').fetchall()) for table in tables}


def _audit(conn) -> tuple[list, list]:
    requests = [(request_id, outcome, profiles, identifiers, {t: n for t, n in json.loads(by_table).items()
                                                                 if t.startswith("raw.")})
                for request_id, outcome, profiles, identifiers, by_table in conn.execute(
        "select request_id, outcome, profiles_found, identifiers_erased, rows_erased_by_table::varchar "
        "from privacy.requests order by request_id").fetchall()]
    lines = conn.execute("select request_id, load_id, sum(accepted_lines), sum(rejected_lines) from privacy.erased_lines "
                         "group by all order by all").fetchall()
    return requests, lines


@pytest.fixture(scope="module")
def spark_layout(sample_runs, tmp_path_factory) -> Path:
    """The sample's first build as Spark's warehouse folder would hold it (read it, never write)."""
    root = tmp_path_factory.mktemp("spark-layout")
    _write_as_spark(sample_runs.first_build.database, root)
    return root


def _control(spark_layout: Path, folder: Path) -> Path:
    """A control database of the Spark target, showing ``spark_layout``'s tables."""
    control = folder / "control" / WAREHOUSE_FILE_NAME
    control.parent.mkdir(parents=True)
    with duckdb.connect(str(control)) as conn:
        assert show_spark_tables(conn, spark_layout, raw_table_shapes()) > 40
    return control


def test_a_delete_on_spark_leaves_spark_the_lines_the_duckdb_erasure_deletes(sample_runs, spark_layout, tmp_path):
    sample = sample_runs.copy_of_first_build(tmp_path / "duckdb")
    rules, no_files = settings.identity_rules(), tmp_path / "no-request-files"
    pending = tmp_path / "erasure-pending.json"

    with duckdb.connect(str(_control(spark_layout, tmp_path))) as conn:
        batch = process_requests(conn, no_files, REQUESTS, rules=rules, salt=SALT, export_dir=tmp_path / "exports-spark",
                                 spark_erasure=pending)
        on_spark = _audit(conn)
        tombstones_on_spark = conn.execute("select * exclude (erased_at) from privacy.tombstones order by all").fetchall()
    assert batch.outcomes[("delete", "completed")] == 2

    with duckdb.connect(str(sample.database)) as conn:
        before = _raw_lines(conn)
        process_requests(conn, no_files, REQUESTS, rules=rules, salt=SALT, export_dir=tmp_path / "exports-duckdb")
        erased = {table: sorted(before[table] - lines) for table, lines in _raw_lines(conn).items()}
        on_duckdb = _audit(conn)
        tombstones_on_duckdb = conn.execute("select * exclude (erased_at) from privacy.tombstones order by all").fetchall()

    left_to_spark = {table: sorted(map(tuple, keys)) for table, keys in json.loads(pending.read_text()).items()}
    assert left_to_spark == {table: keys for table, keys in erased.items() if keys}
    assert {"contacts", "identifies", "snowplow"} <= set(left_to_spark)  # Segment and Snowplow messages, contact rows
    assert on_spark == on_duckdb and tombstones_on_spark == tombstones_on_duckdb


def test_a_delete_that_finds_nobody_leaves_spark_nothing_to_do(spark_layout, tmp_path):
    """No lines, no pending erasure: Spark does not rebuild every model for a request that erased nothing."""
    pending = tmp_path / "erasure-pending.json"
    with duckdb.connect(str(_control(spark_layout, tmp_path))) as conn:
        batch = process_requests(conn, tmp_path / "no-request-files", [
            {"request_id": "del-nobody", "action": "delete", "identifier": "email:nobody@example.org",
             "requested_by": "dpo@shop.example"}], rules=settings.identity_rules(), salt=SALT,
            export_dir=tmp_path / "exports", spark_erasure=pending)
    assert batch.outcomes == {("delete", "not_found"): 1} and not pending.exists()
