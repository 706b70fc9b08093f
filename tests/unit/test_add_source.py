"""The add-source scaffold's pure parts: reading a sample, the identifier mapping, what it writes."""

import json
from pathlib import Path

import pytest
import yaml

from orchestration.core import settings
from orchestration.landing.add_source import (
    detect_identifier_type,
    json_path,
    plan_source,
    register_source,
    render_models_yml,
    render_sources_yml,
    render_staging_sql,
    scaffold,
)

TYPES = ["user_id", "email", "phone", "anonymous_id", "crm_id"]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_identifier_types_are_told_by_field_names():
    assert [detect_identifier_type(n, ["crm_id"]) for n in
            ["Member Email", "E-mail", "Mobile", "phone_number", "userId", "context.device_id", "CRM ID", "club"]] == \
        ["email", "email", "phone", "phone", "user_id", "anonymous_id", "crm_id", None]


def test_a_csv_sample_gives_its_mapping_time_and_overrides(tmp_path):
    sample = write(tmp_path / "gym.csv", "Member Email,Mobile,member_id,badge,checked_in_at\n,,,,\n")
    plan = plan_source("gym_checkins", sample, TYPES, {"badge": "crm_id", "member_id": "none"})
    assert plan.format == "csv"
    assert plan.identifiers == {"Member Email": "email", "Mobile": "phone", "badge": "crm_id"}
    assert (plan.timestamp, plan.event_name, plan.message_id) == ("checked_in_at", None, None)
    with pytest.raises(ValueError, match="no field 'nope'"):
        plan_source("gym_checkins", sample, TYPES, {"nope": "email"})
    with pytest.raises(ValueError, match="snake_case"):
        plan_source("Gym Checkins", sample, TYPES)
    no_ids = write(tmp_path / "plain.csv", "club,city\n")
    with pytest.raises(ValueError, match="no identifier field.*--identifier"):
        plan_source("plain", no_ids, TYPES)


def test_a_json_lines_sample_gives_nested_paths(tmp_path):
    sample = write(tmp_path / "events.jsonl", json.dumps(
        {"event_id": "e1", "event": "Clicked", "sent_at": "2024-01-01", "context": {"traits": {"email": "a@b.c"}}}) + "\n")
    plan = plan_source("clicks", sample, TYPES)
    assert plan.identifiers == {"context.traits.email": "email"}
    assert (plan.message_id, plan.event_name, plan.timestamp) == ("event_id", "event", "sent_at")
    assert json_path("context.traits.email", "jsonl") == "$.context.traits.email"
    snowplow = plan_source("sp", Path(settings.SAMPLE_LANDING_DIR / "snowplow" / "enriched_events.jsonl"), TYPES)
    assert snowplow.identifiers == {"user_id": "user_id", "domain_userid": "anonymous_id"}
    assert (snowplow.message_id, snowplow.timestamp) == ("event_id", "derived_tstamp")
    assert json_path("Member Email", "csv") == '$."Member Email"'


def test_the_staging_model_maps_identifiers_to_the_message_shape(tmp_path):
    sample = write(tmp_path / "gym.csv", "Member Email,member_id,visitor_id\n")
    sql = render_staging_sql(plan_source("gym", sample, TYPES), "identity-warehouse add-source gym gym.csv")
    assert "json_get_string('payload', '$.member_id') }} as user_id" in sql
    assert "json_get_string('payload', '$.visitor_id') }} as anonymous_id" in sql
    assert "('email', json_get_string('payload', '$.\"Member Email\"'))" in sql
    assert "{{ source('gym', 'gym') }}" in sql and "loaded_at as event_at" in sql
    for text in (render_sources_yml(plan_source("gym", sample, TYPES)), render_models_yml(plan_source("gym", sample, TYPES))):
        yaml.safe_load(text)  # valid YAML


def test_registration_keeps_the_project_file_and_refuses_a_second_time(tmp_path):
    project = (settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text()
    plan = plan_source("gym", write(tmp_path / "gym.csv", "email\n"), TYPES)
    updated = register_source(project, plan)
    # with where its rows carry identifiers: the privacy screen reads them at the landing door
    assert yaml.safe_load(updated)["vars"]["landing_sources"]["gym"] == {"folder": "gym", "format": "csv",
                                                                         "identifiers": {"email": "email"}}
    assert updated.count("#") == project.count("#")  # every comment kept
    with pytest.raises(ValueError, match="already registered"):
        register_source(updated, plan)


def test_scaffold_writes_the_files_and_copies_the_sample(tmp_path):
    project = tmp_path / "dbt_project"
    project.mkdir()
    (project / "dbt_project.yml").write_text((settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    sample = write(tmp_path / "gym.csv", "email,phone\n")
    written = scaffold(plan_source("gym", sample, TYPES), project, tmp_path / "landing", sample, "cmd")
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {
        "dbt_project/dbt_project.yml", "dbt_project/models/staging/gym/_gym__sources.yml",
        "dbt_project/models/staging/gym/_gym__models.yml", "dbt_project/models/staging/gym/stg_gym__events.sql",
        "landing/gym/gym.csv"}
    with pytest.raises(ValueError, match="already exists"):
        scaffold(plan_source("gym", sample, TYPES), project, tmp_path / "landing", sample, "cmd")
