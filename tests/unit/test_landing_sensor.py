"""The sensor compares the landing folder with the warehouse's record of loaded files
(``raw.loaded_files``), not with its own cursor: a fresh Dagster instance on an up-to-date warehouse
starts nothing (issue 29)."""

import os
import subprocess
import time

import dagster as dg
import duckdb
import pytest

from orchestration.core.locking import lock_path
from orchestration.landing.ingestion import ingest_landing_dir
from orchestration.landing.sources import registered_sources
from orchestration.location.jobs import new_landing_files_sensor
from tests.conftest import environment


@pytest.fixture
def loaded(tmp_path):
    """A landing folder and a warehouse whose raw.loaded_files lists every file of it."""
    landing = tmp_path / "landing"
    (landing / "events").mkdir(parents=True)
    (landing / "events" / "a.jsonl").write_text('{"type":"track","messageId":"m1","anonymousId":"a","event":"E"}\n')
    (landing / "contacts").mkdir()
    (landing / "contacts" / "list.csv").write_text("email\nx@example.com\n")
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as conn:
        ingest_landing_dir(conn, landing, sources=registered_sources())
    with environment(LANDING_DIR=landing, DUCKDB_PATH=database):
        yield landing, database


def tick(instance):
    return new_landing_files_sensor(dg.build_sensor_context(instance=instance))


def test_a_fresh_instance_on_an_up_to_date_warehouse_starts_nothing(loaded):
    landing, _ = loaded
    with dg.instance_for_test() as instance:  # a new DAGSTER_HOME: no cursor
        result = tick(instance)
        assert isinstance(result, dg.SkipReason) and "loaded" in result.skip_message
        # touched, same content: still loaded
        os.utime(landing / "events" / "a.jsonl", (time.time() + 60, time.time() + 60))
        assert isinstance(tick(instance), dg.SkipReason)


def test_a_new_or_changed_file_starts_one_run(loaded):
    landing, _ = loaded
    with dg.instance_for_test() as instance:
        assert isinstance(tick(instance), dg.SkipReason)
        (landing / "events" / "b.jsonl").write_text('{"type":"track","messageId":"m2","anonymousId":"b","event":"E"}\n')
        first = tick(instance)
        assert isinstance(first, dg.RunRequest) and first.run_key
        assert first.run_key == tick(instance).run_key  # the same pending files: the same run (Dagster dedups by key)
        (landing / "contacts" / "list.csv").write_text("email\ny@example.com\n")
        changed = tick(instance)
        assert isinstance(changed, dg.RunRequest) and changed.run_key != first.run_key


def test_a_warehouse_held_by_a_writer_skips_the_tick(loaded):
    _, database = loaded
    holder = subprocess.Popen(["flock", str(lock_path(database)), "sleep", "60"])
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["flock", "-n", str(lock_path(database)), "true"]).returncode == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with dg.instance_for_test() as instance:
            result = tick(instance)
        assert isinstance(result, dg.SkipReason) and "writ" in result.skip_message
    finally:
        holder.kill()
        holder.wait()
