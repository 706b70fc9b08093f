from orchestration.core.warehouse import connect
from tests.conftest import environment


def test_duckdb_memory_limit_and_spill_folder_come_from_the_environment(tmp_path):
    database = tmp_path / "identity_warehouse.duckdb"
    with environment(DUCKDB_PATH=database, DUCKDB_MEMORY_LIMIT="1GB", DUCKDB_TEMP_DIR=tmp_path / "spill"):
        with connect(database) as conn:
            limit, spill = conn.execute(
                "select current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    assert limit == "953.6 MiB" and spill == str(tmp_path / "spill")


def test_compact_leaves_no_erased_value_in_the_file(tmp_path):
    """DuckDB releases deleted rows' blocks without overwriting them: an erased e-mail stays in the
    file's bytes until the file is compacted."""
    from orchestration.core.warehouse import compact, connect

    database = tmp_path / "identity_warehouse.duckdb"
    with connect(database) as conn:
        conn.execute("create schema privacy; create table privacy.tombstones (h varchar primary key)")
        conn.execute("create schema marts; create table marts.people as "
                     "select 'Zq8' || md5(i::varchar) || '@example.com' as email, i from range(50) as r(i)")
        conn.execute("insert into marts.people values ('dana.erased.unique@example.com', 999)")
        conn.execute("create view marts.people_view as select count(*) as n from marts.people")
        conn.execute("checkpoint")
        conn.execute("delete from marts.people where i = 999")
        conn.execute("checkpoint")
    assert b"dana.erased.unique" in database.read_bytes()
    before, after = compact(database)
    assert b"dana.erased.unique" not in database.read_bytes()
    assert before > 0 and after > 0
    with connect(database) as conn:
        assert conn.execute("select n from marts.people_view").fetchone()[0] == 50
        conn.execute("insert into privacy.tombstones values ('a') on conflict do nothing")  # keys kept
        conn.execute("insert into privacy.tombstones values ('a') on conflict do nothing")
        assert conn.execute("select count(*) from privacy.tombstones").fetchone()[0] == 1
    assert not list(tmp_path.glob(".compact-*"))


def test_a_connection_waits_for_a_process_that_still_holds_the_file(tmp_path):
    """A dbt killed with its run dies a moment after the run released the writer lock: the next run
    used to fail at once on DuckDB's 'Conflicting lock'."""
    import subprocess
    import sys
    import time

    from orchestration.core.warehouse import connect

    database = tmp_path / "identity_warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); c.execute('create table t as select 1 as x'); "
        "print('open', flush=True); time.sleep(2)"), str(database)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    started = time.monotonic()
    with connect(database) as conn:
        assert conn.execute("select x from t").fetchone() == (1,)
    assert 0.5 < time.monotonic() - started < 30
    holder.wait(timeout=30)
