"""Identity rules, scenario by scenario, on small hand-written data through the real Dagster job.

All scenarios share one landing folder (their ids do not overlap) so the job runs once for them; a
second warehouse gets the same lines reversed and split over three files loaded in two runs, and
must come out the same.
"""

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from orchestration.core import settings
from orchestration.location.runner import run_build_warehouse
from tests.conftest import WAREHOUSE_FILE_NAME, environment


def msg(message_id, type_, at, anon=None, user=None, **fields):
    message = {"type": type_, "messageId": message_id, "timestamp": at, "receivedAt": at}
    message.update({"anonymousId": anon} if anon else {})
    message.update({"userId": user} if user else {})
    message.update(fields)
    return message


SCENARIO_MESSAGES = [
    # Merge protection, indirect: device A of user U1 submits e-mail E, which user U2 signs up with.
    # The path U1 - A - E - U2 would put two user ids in one profile; the weakest link (through the
    # anonymous id A) is the one not made.
    msg("mp-1", "identify", "2024-01-01T10:00:00Z", anon="mp-device-a", user="mp-user-1"),
    msg("mp-2", "identify", "2024-01-02T10:00:00Z", anon="mp-device-a", traits={"email": "mp-e@example.com"}),
    msg("mp-3", "identify", "2024-01-03T10:00:00Z", user="mp-user-2", traits={"email": "mp-e@example.com"}),
    # An alias between two user ids: with user_id limited to one per profile, it is refused.
    msg("al-1", "identify", "2024-01-01T10:00:00Z", user="al-old-account"),
    msg("al-2", "alias", "2024-01-05T10:00:00Z", user="al-new-account", previousId="al-old-account"),
    # The e-mail limit (5): the sixth e-mail, the latest, stays out of the profile.
    *[msg(f"em-{i}", "identify", f"2024-02-0{i}T10:00:00Z", user="em-user", traits={"email": f"em-{i}@example.com"})
      for i in range(1, 7)],
    # Junk: a household device used by two signed-up users links neither; its own page views stay together.
    msg("hh-1", "page", "2024-03-01T08:00:00Z", anon="hh-family-laptop", name="Home"),
    msg("hh-2", "identify", "2024-03-01T08:05:00Z", anon="hh-family-laptop", user="hh-parent"),
    msg("hh-3", "identify", "2024-03-02T20:00:00Z", anon="hh-family-laptop", user="hh-teen"),
    msg("hh-4", "identify", "2024-03-03T09:00:00Z", anon="hh-parent-phone", user="hh-parent"),
    # Junk: a client bug sends one anonymousId for everyone.
    *[msg(f"bug-{i}", "track", f"2024-03-0{i}T12:00:00Z", anon="bug-constant-id", user=f"bug-user-{i}", event="Opened")
      for i in range(1, 4)],
    # Junk: a store's placeholder e-mail typed in for several customers (see the contact list below).
    # Junk through devices: a placeholder typed on three strangers' phones, two of whom sign up with
    # their own user ids; it joins none of them (on today's main it merged the one who never signs up).
    msg("ph-1", "identify", "2024-05-01T10:00:00Z", anon="ph-phone-1", traits={"email": "test@test.com"}),
    msg("ph-2", "identify", "2024-05-01T10:05:00Z", anon="ph-phone-1", user="ph-user-1"),
    msg("ph-3", "identify", "2024-05-02T10:00:00Z", anon="ph-phone-2", traits={"email": "test@test.com"}),
    msg("ph-4", "page", "2024-05-02T10:01:00Z", anon="ph-phone-2", name="Home"),
    msg("ph-5", "identify", "2024-05-03T10:00:00Z", anon="ph-phone-3", traits={"email": "test@test.com"}),
    msg("ph-6", "identify", "2024-05-03T10:05:00Z", anon="ph-phone-3", user="ph-user-3"),
    # on_conflict: latest (the build's rules add a device_id type, context.device.id, that stitches):
    # a family tablet used by a parent, then a teen, stitches to the teen, its latest user; the
    # parent's own event stays the parent's, the tablet's anonymous screen views go to the teen.
    msg("st-1", "track", "2024-04-01T10:00:00Z", user="st-parent", event="Opened", context={"device": {"id": "st-tablet"}}),
    msg("st-2", "track", "2024-04-05T10:00:00Z", user="st-teen", event="Opened", context={"device": {"id": "st-tablet"}}),
    msg("st-3", "screen", "2024-04-06T10:00:00Z", anon="st-tablet-app", name="Home", context={"device": {"id": "st-tablet"}}),
]
SCENARIO_CONTACTS = (
    "email,phone,name\n"
    "noemail@store.example,(212) 555-0301,Ann\n"
    "noemail@store.example,(212) 555-0302,Bob\n"
    "noemail@store.example,(212) 555-0303,Cy\n"
    "noemail@store.example,(212) 555-0304,Di\n"
    "real@store.example,(212) 555-0305,Ed\n"
)
EXPECTED_PROFILES = [
    {("user_id", "mp-user-1"), ("anonymous_id", "mp-device-a")},
    {("user_id", "mp-user-2"), ("email", "mp-e@example.com")},
    {("user_id", "al-old-account")},
    {("user_id", "al-new-account")},
    {("user_id", "em-user"), *{("email", f"em-{i}@example.com") for i in range(1, 6)}},
    {("email", "em-6@example.com")},
    {("anonymous_id", "hh-family-laptop")},
    {("user_id", "hh-parent"), ("anonymous_id", "hh-parent-phone")},
    {("user_id", "hh-teen")},
    {("anonymous_id", "bug-constant-id")},
    *[{("user_id", f"bug-user-{i}")} for i in range(1, 4)],
    {("email", "noemail@store.example")},
    *[{("phone", f"+1212555030{i}")} for i in range(1, 5)],
    {("email", "real@store.example"), ("phone", "+12125550305")},
    {("email", "test@test.com")},
    {("user_id", "ph-user-1"), ("anonymous_id", "ph-phone-1")},
    {("anonymous_id", "ph-phone-2")},
    {("user_id", "ph-user-3"), ("anonymous_id", "ph-phone-3")},
    {("user_id", "st-parent")},
    {("user_id", "st-teen"), ("device_id", "st-tablet"), ("anonymous_id", "st-tablet-app")},
]


def scenario_rules() -> dict:
    """The project's identity rules plus a device id (Segment's context.device.id) that stitches a
    shared device to its latest user (`on_conflict: latest`), beside the anonymous id that is junk."""
    rules = settings.identity_rules()
    return {**rules,
            "identifier_types": {**rules["identifier_types"], "device_id": {
                "priority": 4, "max_per_profile": 1000, "normalize": "id", "sources": ["context.device.id"],
                "on_conflict": "latest"}},
            "junk_detection": {**rules["junk_detection"], "device_id": {"user_id": 1}}}


def build(instance):
    return run_build_warehouse(instance, run_config={"ops": {"identity_warehouse_dbt_models": {"config": {
        "dbt_vars": {"identity_rules": scenario_rules()}}}}})


def read_marts(database: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return {
            "identifiers": conn.execute("select * from marts.profile_identifiers").df(),
            "events": conn.execute("select message_id, profile_id from marts.profile_events").df(),
            "junk": conn.execute("select * from marts.junk_identifiers").df(),
            "links": conn.execute("select * from marts.identity_links").df(),
            "profiles": conn.execute("select profile_id, user_id_count from marts.profiles").df(),
        }


def partition(identifiers: pd.DataFrame) -> list[set]:
    groups = identifiers.groupby("profile_id")
    return sorted((set(zip(g.identifier_type, g.identifier_value)) for _, g in groups), key=sorted)


@pytest.fixture(scope="session")
def scenarios(tmp_path_factory, dagster_instance):
    lines = [json.dumps(m) for m in SCENARIO_MESSAGES]
    # One landing folder with everything, in order.
    landing = tmp_path_factory.mktemp("scenarios")
    (landing / "events").mkdir()
    (landing / "contacts").mkdir()
    (landing / "events" / "all.jsonl").write_text("\n".join(lines) + "\n")
    (landing / "contacts" / "store.csv").write_text(SCENARIO_CONTACTS)
    database = tmp_path_factory.mktemp("scenarios-db") / WAREHOUSE_FILE_NAME
    with environment(LANDING_DIR=landing, DUCKDB_PATH=database):
        outcome = build(dagster_instance)
    # The same lines reversed, split over three files, landed in two runs.
    shuffled = tmp_path_factory.mktemp("scenarios-shuffled")
    (shuffled / "events").mkdir()
    reversed_lines = lines[::-1]
    parts = [reversed_lines[i::3] for i in range(3)]
    shuffled_db = tmp_path_factory.mktemp("scenarios-shuffled-db") / WAREHOUSE_FILE_NAME
    with environment(LANDING_DIR=shuffled, DUCKDB_PATH=shuffled_db):
        (shuffled / "events" / "c.jsonl").write_text("\n".join(parts[0]) + "\n")
        (shuffled / "contacts").mkdir()
        (shuffled / "contacts" / "store.csv").write_text(SCENARIO_CONTACTS)
        first_split_outcome = build(dagster_instance)
        (shuffled / "events" / "b.jsonl").write_text("\n".join(parts[1]) + "\n")
        (shuffled / "events" / "a.jsonl").write_text("\n".join(parts[2]) + "\n")
        split_outcome = build(dagster_instance)
    return {
        "database": database,
        "outcome": outcome,
        "split_outcomes": (first_split_outcome, split_outcome),
        "marts": read_marts(database),
        "split_marts": read_marts(shuffled_db),
    }


def test_runs_succeed_and_the_junk_check_warns(scenarios):
    assert scenarios["outcome"].success and scenarios["outcome"].failed_checks == []
    assert any("no_junk_identifiers_detected" in check for check in scenarios["outcome"].warned_checks)


def test_profiles_are_exactly_as_the_rules_say(scenarios):
    assert partition(scenarios["marts"]["identifiers"]) == sorted(EXPECTED_PROFILES, key=sorted)


def test_no_profile_holds_two_user_ids(scenarios):
    assert scenarios["marts"]["profiles"].user_id_count.max() == 1


def test_the_weakest_link_is_the_one_refused_and_says_why(scenarios):
    links = scenarios["marts"]["links"]
    refused = links[links.link_status == "refused"]
    assert set(zip(refused.message_id, refused.refusal_reason)) == {
        ("mp-2", "user_id limit 1"),  # through the anonymous device, not the e-mail
        ("al-2", "user_id limit 1"),
        ("em-6", "email limit 5"),
    }


def test_junk_identifiers_are_listed_with_reason_and_evidence(scenarios):
    junk = scenarios["marts"]["junk"]
    found = {(r.identifier_type, r.identifier_value, r.reason, r.distinct_neighbours) for r in junk.itertuples()}
    assert found == {
        ("anonymous_id", "hh-family-laptop", "seen_with_too_many_user_ids", 2),
        ("anonymous_id", "bug-constant-id", "seen_with_too_many_user_ids", 3),
        ("email", "noemail@store.example", "seen_with_too_many_phones", 4),
        ("email", "test@test.com", "anonymous_ids_seen_with_too_many_user_ids", 2),
    }
    laptop = junk[junk.identifier_value == "hh-family-laptop"].iloc[0]
    assert {laptop.first_neighbour, laptop.last_neighbour} == {"hh-parent", "hh-teen"}
    assert laptop.evidence_messages == 2


def test_messages_follow_their_strongest_identifier_that_is_not_junk(scenarios):
    identifiers = scenarios["marts"]["identifiers"].set_index(["identifier_type", "identifier_value"]).profile_id
    events = scenarios["marts"]["events"].set_index("message_id").profile_id
    assert events["hh-1"] == identifiers[("anonymous_id", "hh-family-laptop")]  # only the junk device
    assert events["hh-3"] == identifiers[("user_id", "hh-teen")]
    assert events["mp-2"] == identifiers[("email", "mp-e@example.com")]


def test_file_order_and_the_split_into_runs_change_nothing(scenarios):
    """The same people come out, whatever the order and the runs (their ids keep each warehouse's history)."""
    assert all(outcome.success for outcome in scenarios["split_outcomes"])
    assert partition(scenarios["split_marts"]["identifiers"]) == partition(scenarios["marts"]["identifiers"])
    junk_columns = ["identifier_type", "identifier_value", "reason", "distinct_neighbours"]
    pd.testing.assert_frame_equal(
        scenarios["split_marts"]["junk"][junk_columns].sort_values(junk_columns).reset_index(drop=True),
        scenarios["marts"]["junk"][junk_columns].sort_values(junk_columns).reset_index(drop=True),
    )


def test_explain_walks_the_links_with_their_evidence(scenarios, capfd):
    from orchestration.cli.main import main

    with environment(DUCKDB_PATH=scenarios["database"]):
        assert main(["explain", "anonymous_id:hh-parent-phone", "user_id:hh-parent"]) == 0
        linked = capfd.readouterr().out
        assert main(["explain", "anonymous_id:mp-device-a", "user_id:mp-user-2"]) == 0
        apart = capfd.readouterr().out
        assert main(["explain", "email:EM-3@example.com"]) == 0
        profile = capfd.readouterr().out
        assert main(["explain", "email:nobody@example.com"]) != 0
    assert "are one person" in linked and "message hh-4 (events/all.jsonl:" in linked
    assert "not one person" in apart
    assert "refused: email:mp-e@example.com -- anonymous_id:mp-device-a in mp-2 (user_id limit 1)" in apart
    assert profile.startswith("profile prof_") and profile.count("user_id:em-user  --  email:em-") == 5


def test_a_shared_device_under_on_conflict_latest_stitches_to_its_latest_user(scenarios, capfd):
    from orchestration.cli.main import main

    identifiers = scenarios["marts"]["identifiers"].set_index(["identifier_type", "identifier_value"]).profile_id
    events = scenarios["marts"]["events"].set_index("message_id").profile_id
    teen, parent = identifiers[("user_id", "st-teen")], identifiers[("user_id", "st-parent")]
    assert identifiers[("device_id", "st-tablet")] == teen != parent
    assert events["st-1"] == parent and events["st-2"] == events["st-3"] == teen
    assert ("device_id", "st-tablet") not in set(zip(scenarios["marts"]["junk"].identifier_type,
                                                     scenarios["marts"]["junk"].identifier_value))
    with environment(DUCKDB_PATH=scenarios["database"]):
        assert main(["explain", "user_id:st-parent", "user_id:st-teen"]) == 0
        apart = capfd.readouterr().out
        # (the command reads the project's rules, without the build's device_id type: the teen's profile)
        assert main(["explain", "user_id:st-teen"]) == 0
        profile = capfd.readouterr().out
    stitched = ("  stitched on conflict: device_id:st-tablet was seen with 2 user_ids; on_conflict latest "
                "links it to user_id:st-teen only")
    assert "not one person" in apart and stitched in apart.splitlines()
    assert "user_id:st-teen  --  device_id:st-tablet   message st-2" in profile and stitched in profile.splitlines()


def test_a_placeholder_typed_on_strangers_devices_links_none_of_them(scenarios):
    junk = scenarios["marts"]["junk"].set_index(["identifier_type", "identifier_value"])
    placeholder = junk.loc[("email", "test@test.com")]
    assert placeholder.neighbour_type == "anonymous_id.user_id"
    assert {placeholder.first_neighbour, placeholder.last_neighbour} == {"ph-user-1", "ph-user-3"}
    assert placeholder.evidence_messages == 3  # typed on three devices
    events = scenarios["marts"]["events"].set_index("message_id").profile_id
    assert events["ph-4"] != events["ph-2"] and events["ph-4"] != events["ph-6"]
