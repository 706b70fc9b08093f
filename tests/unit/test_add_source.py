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


# ---------------------------------------------------------------------------------------------
# A third-party tracker's export (issue 29): a Snowplow-like CSV, identifiers inside JSON cells
# ---------------------------------------------------------------------------------------------

SNOWPLOW_COLUMNS = ["event_id", "collector_tstamp", "derived_tstamp", "event", "event_name", "user_id",
                    "page_title", "contexts_com_snowplowanalytics_snowplow_client_session_1", "contexts"]


def snowplow_row(n: int, event: str, event_name: str, user_id: str = "", title: str = "") -> list[str]:
    """One synthetic event: the client session entity (its userId is the tracker's cookie id) as an
    array of objects, and the enriched `contexts` envelope (schema + data array) as the SDK writes them."""
    session = [{"userId": f"cookie-{n % 3}", "sessionId": f"s-{n}", "sessionIndex": 1}]
    envelope = {"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                "data": [{"schema": "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0", "data": {"id": f"pv-{n}"}},
                         {"schema": "iglu:com.acme/customer/jsonschema/1-0-0", "data": {"email": f"Person{n % 3}@Example.com"}}]}
    return [f"e-{n:04d}", f"2024-06-0{1 + n % 5}T10:00:00Z", f"2024-06-0{1 + n % 5}T10:00:01Z", event, event_name, user_id,
            title, json.dumps(session), json.dumps(envelope)]


SNOWPLOW_EVENTS = [("page_view", "page_view", "", "Home"), ("unstruct", "link_click", "", ""),
                   ("unstruct", "add_to_cart", "u-1", ""), ("page_view", "page_view", "", "Cart"),
                   ("unstruct", "submit_form", "", ""), ("struct", "event", "", ""),
                   ("unstruct", "link_click", "u-2", ""), ("unstruct", "add_to_cart", "", "")]
# people: cookie-0 is u-2 and Person0 (who viewed two pages), cookie-1 Person1, cookie-2 u-1 and Person2


def snowplow_csv(path: Path) -> Path:
    import csv as csv_module

    with path.open("w", newline="") as handle:
        writer = csv_module.writer(handle)
        writer.writerow(SNOWPLOW_COLUMNS)
        for n, (event, name, user, title) in enumerate(SNOWPLOW_EVENTS):
            writer.writerow(snowplow_row(n, event, name, user, title))
    return path


SESSION_USER = "contexts_com_snowplowanalytics_snowplow_client_session_1[*].userId"


def test_the_event_name_is_the_informative_column_and_says_why(tmp_path):
    sample = snowplow_csv(tmp_path / "sp.csv")
    plan = plan_source("sp_export", sample, TYPES)
    # `event` is mostly the generic `unstruct`; `event_name` names what happened
    assert plan.event_name == "event_name"
    assert "event_name" in plan.event_name_reason and "unstruct" in plan.event_name_reason
    assert plan_source("sp_export", sample, TYPES, event_name="event").event_name == "event"
    with pytest.raises(ValueError, match="--event-name nope: no field"):
        plan_source("sp_export", sample, TYPES, event_name="nope")


def test_identifiers_inside_json_cells_and_arrays(tmp_path):
    sample = snowplow_csv(tmp_path / "sp.csv")
    plan = plan_source("sp_export", sample, TYPES, {SESSION_USER: "anonymous_id",
                                                    "contexts.data[*].data.email": "email"})
    assert set(plan.identifiers.values()) == {"user_id", "anonymous_id", "email"}
    with pytest.raises(ValueError, match=r"no value at .*userID.* in the sample.*userId"):
        plan_source("sp_export", sample, TYPES, {SESSION_USER.replace("userId", "userID"): "anonymous_id"})
    with pytest.raises(ValueError, match="no field 'nope'"):
        plan_source("sp_export", sample, TYPES, {"nope.userId": "anonymous_id"})
    # the generated SQL reads the cell's JSON and the first non-null value under the array
    sql = render_staging_sql(plan, "cmd")
    assert "json_first_string(json_get_string('payload', '$.contexts_com_snowplowanalytics_snowplow_client_session_1'), " \
           "'$[*].userId')" in sql
    # the landing door (privacy screen) reads the same values: run its DuckDB expressions on a row
    from orchestration.landing.sources import parse_landing_sources

    registered = yaml.safe_load(register_source((settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text(), plan))
    source = next(s for s in parse_landing_sources(registered["vars"]["landing_sources"]) if s.name == "sp_export")
    row = dict(zip(SNOWPLOW_COLUMNS, snowplow_row(4, "unstruct", "submit_form", "u-9")))
    import duckdb

    values = duckdb.execute("select " + ", ".join(f"{expr} as {kind}" for kind, expr in source.identifier_expressions("line"))
                            + " from (select ?::varchar as line)", [json.dumps(row)]).fetchone()
    assert sorted(values) == sorted(["u-9", "cookie-1", "Person1@Example.com"])


def test_a_second_add_source_updates_what_it_generated_unless_edited(tmp_path):
    project = tmp_path / "dbt_project"
    project.mkdir()
    (project / "dbt_project.yml").write_text((settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    sample = snowplow_csv(tmp_path / "sp.csv")
    scaffold(plan_source("sp_export", sample, TYPES), project, tmp_path / "landing", sample, "cmd")
    with pytest.raises(ValueError, match="--update"):
        scaffold(plan_source("sp_export", sample, TYPES), project, tmp_path / "landing", sample, "cmd")
    fixed = plan_source("sp_export", sample, TYPES, {SESSION_USER: "anonymous_id"})
    scaffold(fixed, project, tmp_path / "landing", sample, "cmd", update=True)
    model = project / "models" / "staging" / "sp_export" / "stg_sp_export__events.sql"
    assert "client_session_1" in model.read_text()
    registered = yaml.safe_load((project / "dbt_project.yml").read_text())["vars"]["landing_sources"]
    assert registered["sp_export"]["identifiers"][f'"{SESSION_USER.split("[")[0]}"[*].userId'] == "anonymous_id"
    assert list(registered).count("sp_export") == 1 and "snowplow" in registered
    original = (settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text()
    assert (project / "dbt_project.yml").read_text().count("#") == original.count("#")  # comments kept
    # an edited model is the user's: refused, with what to do
    model.write_text(model.read_text().replace("as event_name", "as event_name -- mine"))
    with pytest.raises(ValueError, match="edited since"):
        scaffold(plan_source("sp_export", sample, TYPES), project, tmp_path / "landing", sample, "cmd", update=True)
    assert "-- mine" in model.read_text()


def test_page_views_become_page_messages(tmp_path):
    sample = snowplow_csv(tmp_path / "sp.csv")
    plan = plan_source("sp_export", sample, TYPES)
    assert (plan.type_field, plan.message_types) == ("event", {"page_view": "page"})
    sql = render_staging_sql(plan, "cmd")
    assert "when 'page_view' then 'page'" in sql and "'track' as message_type" not in sql
    custom = plan_source("sp_export", sample, TYPES, type_field="event_name", message_types={"link_click": "page"})
    assert (custom.type_field, custom.message_types) == ("event_name", {"link_click": "page"})
    with pytest.raises(ValueError, match="message type"):
        plan_source("sp_export", sample, TYPES, message_types={"page_view": "purchase"})


def test_a_sample_is_never_copied_into_the_repository(tmp_path):
    repository = tmp_path / "repo"
    project = repository / "dbt_project"
    project.mkdir(parents=True)
    (project / "dbt_project.yml").write_text((settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    sample = snowplow_csv(tmp_path / "sp.csv")
    written = scaffold(plan_source("sp_export", sample, TYPES), project, repository / "seeds", sample, "cmd",
                       repository=repository)
    assert not (repository / "seeds").exists()
    assert all(p.suffix in (".yml", ".sql") for p in written)
    # the default landing folder is the repository's seeds/: a real sample never goes there
    assert settings.landing_dir().resolve().is_relative_to(settings.PROJECT_ROOT)


# ---------------------------------------------------------------------------------------------
# An Amplitude Export API file (issue 29): JSON lines in Amplitude's documented shape, made up
# ---------------------------------------------------------------------------------------------

AMPLITUDE_PEOPLE = [  # (user id once signed in, device id, e-mail once known)
    ("amp-u-101", "dev-aa11", "Mia.Lund@Example.com"), (None, "dev-bb22", None),
    ("amp-u-103", "dev-cc33", "noor.haddad@example.org"), (None, "dev-dd44", None),
]
AMPLITUDE_EVENTS = [  # (person, event_type, page path)
    (0, "[Amplitude] Page Viewed", "/"), (0, "[Amplitude] Page Viewed", "/pricing"), (0, "Signed Up", None),
    (0, "Plan Selected", None), (1, "[Amplitude] Page Viewed", "/"), (1, "Video Played", None),
    (2, "[Amplitude] Page Viewed", "/blog"), (2, "Signed Up", None), (2, "Plan Selected", None),
    (2, "[Amplitude] Page Viewed", "/docs"), (3, "[Amplitude] Page Viewed", "/"), (3, "Video Played", None),
    (0, "Invite Sent", None), (1, "[Amplitude] Page Viewed", "/pricing"), (2, "Invite Sent", None),
    (3, "[Amplitude] Page Viewed", "/about"), (0, "[Amplitude] Page Viewed", "/settings"), (1, "Video Played", None),
    (2, "Plan Selected", None), (3, "Video Played", None),
]


def amplitude_export(path: Path) -> Path:
    """A synthetic Amplitude Export API file: one event per line, with the export's fields (an
    `event_id` that counts a device's events, hence not unique; `$insert_id` and `uuid` that are);
    the user id and e-mail only once the person signed up."""
    counters: dict[str, int] = {}
    lines = []
    for n, (person, event_type, page) in enumerate(AMPLITUDE_EVENTS):
        user_id, device_id, email = AMPLITUDE_PEOPLE[person]
        signed_up = user_id and any(p == person and e == "Signed Up" for p, e, _ in AMPLITUDE_EVENTS[:n + 1])
        counters[device_id] = counters.get(device_id, 0) + 1
        at = f"2024-03-{12 + n // 8:02d} 15:{n:02d}:00.123000"
        properties = ({"[Amplitude] Page Path": page, "[Amplitude] Page Title": f"Acme {page}",
                       "[Amplitude] Page Location": f"https://acme.example{page}"} if page else {"plan": "team"})
        lines.append(json.dumps({
            "$insert_id": f"ins-{n:04d}-{device_id}", "uuid": f"6f1c2a34-0000-4000-8000-{n:012d}",
            "event_id": counters[device_id], "event_type": event_type, "event_time": at,
            "client_event_time": at, "server_upload_time": at, "user_id": user_id if signed_up else None,
            "device_id": device_id, "amplitude_id": 900000 + person, "session_id": 1710255960000 + person,
            "platform": "Web", "os_name": "Chrome", "event_properties": properties,
            "user_properties": {"email": email, "plan": "team"} if signed_up else {"initial_referrer": "EMPTY"},
            "groups": {}, "library": "amplitude-ts/2.4.1", "data": {}, "amplitude_event_type": None,
        }))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_amplitude_export_gives_its_mapping(tmp_path):
    plan = plan_source("amplitude", amplitude_export(tmp_path / "amplitude_export.jsonl"), TYPES)
    assert plan.format == "jsonl"
    assert plan.identifiers == {"user_id": "user_id", "device_id": "anonymous_id", "user_properties.email": "email"}
    assert (plan.event_name, plan.timestamp) == ("event_type", "event_time")
    # Amplitude's event_id counts a device's events: not a message id; $insert_id is unique
    assert plan.message_id == "$insert_id"
    # its page views (`[Amplitude] Page Viewed`) are `page` messages, every other event a `track`
    assert (plan.type_field, plan.message_types) == ("event_type", {"[Amplitude] Page Viewed": "page"})
    sql = render_staging_sql(plan, "cmd")
    assert "when '[Amplitude] Page Viewed' then 'page'" in sql
    assert "parse_timestamp(json_get_string('payload', '$.event_time'))" in sql
    registered = yaml.safe_load(register_source((settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text(), plan))
    assert registered["vars"]["landing_sources"]["amplitude"]["message_id"] == "$insert_id"
