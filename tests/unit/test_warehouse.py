from orchestration.warehouse import connect
from tests.conftest import environment


def test_duckdb_memory_limit_and_spill_folder_come_from_the_environment(tmp_path):
    database = tmp_path / "identity_warehouse.duckdb"
    with environment(DUCKDB_PATH=database, DUCKDB_MEMORY_LIMIT="1GB", DUCKDB_TEMP_DIR=tmp_path / "spill"):
        with connect(database) as conn:
            limit, spill = conn.execute(
                "select current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    assert limit == "953.6 MiB" and spill == str(tmp_path / "spill")
