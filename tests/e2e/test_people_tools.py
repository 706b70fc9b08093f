"""The tools people use without reading the code, on real runs: the profile lookup (on the sample
warehouse), the analyst documentation (dbt docs generate), and adding a source with the scaffold
(a new CSV lands, its identifiers join the graph and merge with people already there)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration import settings
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME
from tests.e2e.conftest import SampleRuns

pytestmark = pytest.mark.e2e


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], cwd=settings.PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def sample_env(sample_runs: SampleRuns, **more) -> dict:
    env = {**os.environ, "DUCKDB_PATH": str(sample_runs.database), "LANDING_DIR": str(sample_runs.landing), **more}
    env.pop("DAGSTER_HOME", None)
    return env


def test_lookup_finds_a_person_from_a_phone_as_typed(sample_runs: SampleRuns, tmp_path):
    result = cli("lookup", "(415) 555-0103", "--graph-dir", str(tmp_path), env=sample_env(sample_runs))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    profile_id = sample_runs.after_late_file.profile_of("phone", "+14155550103")
    assert f"profile {profile_id}  (found by phone:+14155550103)" in out
    for identifier in ("amp-user-ravi", "amp-web-ravi", "+14155550103"):
        assert identifier in out
    # where each trait came from, the latest events, and the links with their evidence
    assert "list:webinar_attendees contact:webinar_attendees:" in out
    assert "Signed Up" in out
    assert "user_id:amp-user-ravi == anonymous_id:amp-web-ravi" in out
    assert (tmp_path / f"{profile_id}.dot").read_text().startswith("graph identity {")
    if shutil.which("dot"):
        assert (tmp_path / f"{profile_id}.svg").read_text().lstrip().startswith("<?xml")


def test_lookup_takes_an_email_in_any_case_and_says_when_nothing_matches(sample_runs: SampleRuns, tmp_path):
    found = cli("lookup", "  Dana.Argelies@EXAMPLE.com ", "--no-graph", env=sample_env(sample_runs))
    assert found.returncode == 0 and "(found by email:dana.argelies@example.com)" in found.stdout
    missing = cli("lookup", "nobody@example.com", "--no-graph", env=sample_env(sample_runs))
    assert missing.returncode == 1 and "no profile holds 'nobody@example.com'" in missing.stderr


def test_analyst_docs_generate_and_document_every_mart(sample_runs: SampleRuns, tmp_path):
    env = sample_env(sample_runs)
    result = subprocess.run([settings.DBT_EXECUTABLE, "docs", "generate", "--target-path", str(tmp_path),
                             "--profiles-dir", str(settings.DBT_PROFILES_DIR)],
                            cwd=settings.DBT_PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "index.html").exists()
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    marts = [node for node in manifest["nodes"].values()
             if node["resource_type"] == "model" and node["schema"] in ("marts", "audiences")]
    assert {"profiles", "profile_identifiers", "profile_events", "profile_trait_sources", "profile_traits",
            "identity_links"} <= {node["name"] for node in marts}
    for node in marts:
        assert "```sql" in node["description"], f"{node['name']}: no example query"
        assert node["unique_id"] in catalog["nodes"], f"{node['name']}: not in the catalog"
        undocumented = [c for c in catalog["nodes"][node["unique_id"]]["columns"]
                        if not node["columns"].get(c, {}).get("description")]
        assert not undocumented, f"{node['name']}: columns without a description: {undocumented}"


GYM_CSV = """Member Email,Mobile,member_id,club,checked_in_at
Dana.Argelies@Example.com,,,Downtown,2024-06-05 07:30:00
,(415) 555-0103,,Harbour,2024-06-05 18:10:00
zoe.kim@example.org,415.555.0199,gym-778,Downtown,2024-06-06 06:45:00
"""


@pytest.fixture(scope="session")
def added_source(tmp_path_factory):
    """A copy of the project; the webinar story as the people already there; a gym's check-in CSV
    scaffolded with add-source, then one run."""
    project = tmp_path_factory.mktemp("add-source") / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "computed",
                                                                                    ".computed.tmp"))
    landing = tmp_path_factory.mktemp("add-source-landing")
    (landing / "events").mkdir()
    shutil.copy(SEEDS / "events" / "stories" / "amplitude_webinar_signups.jsonl", landing / "events")
    (landing / "contacts").mkdir()
    shutil.copy(SEEDS / "contacts" / "webinar_attendees.csv", landing / "contacts")
    sample = tmp_path_factory.mktemp("samples") / "gym_checkins.csv"
    sample.write_text(GYM_CSV)
    database = tmp_path_factory.mktemp("add-source-db") / WAREHOUSE_FILE_NAME
    env = {**os.environ, "DBT_PROJECT_DIR": str(project), "LANDING_DIR": str(landing), "DUCKDB_PATH": str(database),
           "EXPORT_DIR": str(tmp_path_factory.mktemp("add-source-exports"))}
    env.pop("DAGSTER_HOME", None)
    scaffolded = cli("add-source", "gym_checkins", str(sample), env=env)
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    run = cli("run", env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    with duckdb.connect(str(database), read_only=True) as conn:
        identifiers = conn.execute("select identifier_type, identifier_value, profile_id from marts.profile_identifiers").fetchall()
        events = conn.execute("select message_id, profile_id, event_name from marts.profile_events "
                              "where source = 'gym_checkins'").fetchall()
        raw = conn.execute("select count(*) from raw.gym_checkins").fetchone()[0]
    return {"scaffolded": scaffolded.stdout, "project": project, "landing": landing, "raw": raw,
            "identifiers": {(t, v): p for t, v, p in identifiers}, "events": events}


def test_add_source_writes_the_staging_model_and_registers_the_source(added_source):
    staging = added_source["project"] / "models" / "staging" / "gym_checkins"
    assert sorted(p.name for p in staging.iterdir()) == [
        "_gym_checkins__models.yml", "_gym_checkins__sources.yml", "stg_gym_checkins__events.sql"]
    assert "Member Email → email, Mobile → phone, member_id → user_id" in added_source["scaffolded"]
    assert (added_source["landing"] / "gym_checkins" / "gym_checkins.csv").exists()


def test_a_new_csv_lands_and_its_identifiers_join_the_graph(added_source):
    identifiers = added_source["identifiers"]
    assert added_source["raw"] == 3
    assert len(added_source["events"]) == 3 and all(profile for _, profile, _ in added_source["events"])
    # a new person from the gym only
    zoe = identifiers[("user_id", "gym-778")]
    assert identifiers[("email", "zoe.kim@example.org")] == zoe == identifiers[("phone", "+14155550199")]
    # people already there: merged on the e-mail (any case) and on the phone (as typed)
    dana, ravi = identifiers[("user_id", "amp-user-dana")], identifiers[("user_id", "amp-user-ravi")]
    profile_of_event = {profile for _, profile, _ in added_source["events"]}
    assert {dana, ravi, zoe} == profile_of_event
