"""add-source on a second tracker format (issue 29): an Amplitude Export API file (synthetic, in
the export's documented shape) scaffolded, landed with the sample data and built in one run."""

from __future__ import annotations

import os
import shutil

import duckdb

from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME, copy_dbt_project
from tests.e2e.test_people_tools import cli
from tests.unit.test_add_source import amplitude_export


def test_an_amplitude_export_joins_the_graph_with_its_page_views(tmp_path):
    project = copy_dbt_project(tmp_path / "dbt_project")
    landing = tmp_path / "landing"
    shutil.copytree(SEEDS, landing)
    (tmp_path / "samples").mkdir()
    sample = amplitude_export(tmp_path / "samples" / "amplitude_export.jsonl")  # outside the landing folder
    database = tmp_path / "db" / WAREHOUSE_FILE_NAME
    database.parent.mkdir()
    env = {**os.environ, "DBT_PROJECT_DIR": str(project), "LANDING_DIR": str(landing), "DUCKDB_PATH": str(database),
           "EXPORT_DIR": str(tmp_path / "exports")}
    env.pop("DAGSTER_HOME", None)
    scaffolded = cli("add-source", "amplitude", str(sample), env=env)
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    assert "user_id → user_id, device_id → anonymous_id, user_properties.email → email" in scaffolded.stdout
    assert (landing / "amplitude" / "amplitude_export.jsonl").exists()  # outside the repository: copied
    run = cli("run", env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    with duckdb.connect(str(database), read_only=True) as conn:
        identifiers = {(t, v): p for t, v, p in conn.execute(
            "select identifier_type, identifier_value, profile_id from marts.profile_identifiers").fetchall()}
        types = dict(conn.execute("select message_type, count(*) from marts.profile_events "
                                  "where source = 'amplitude' group by 1").fetchall())
        pages = conn.execute("select distinct event_name from marts.profile_events "
                             "where source = 'amplitude' and message_type = 'page'").fetchall()
        raw = conn.execute("select count(*), count(distinct message_id) from raw.amplitude").fetchone()
    # one person: the device id, the user id it signed up with and the e-mail (normalised)
    mia = identifiers[("anonymous_id", "dev-aa11")]
    assert identifiers[("user_id", "amp-u-101")] == mia == identifiers[("email", "mia.lund@example.com")]
    assert identifiers[("anonymous_id", "dev-cc33")] == identifiers[("user_id", "amp-u-103")] != mia
    assert identifiers[("anonymous_id", "dev-bb22")] not in (mia, identifiers[("user_id", "amp-u-103")])
    # every line landed with its own id ($insert_id, not the repeating event_id counter)
    assert raw == (20, 20)
    assert types == {"page": 9, "track": 11} and pages == [("[Amplitude] Page Viewed",)]
