"""Privacy requests without dbt: parsing, normalisation, hashes, the ingestion screen, erasure."""

import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from orchestration import privacy, settings
from orchestration.ingestion import ingest_landing_dir
from orchestration.privacy import (PrivacyRequest, PrivacyScreen, identifier_hash, normalize_identifier,
                                   process_requests, read_request_file, text_match_pattern)
from tests.unit.test_ingestion import write_jsonl

RULES = settings.identity_rules()
SALT = "unit-salt"


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "privacy_test.duckdb"))
    yield connection
    connection.close()


@pytest.mark.parametrize("identifier_type, value, expected", [
    ("email", "  Dana.Argelies@Example.COM ", "dana.argelies@example.com"),
    ("phone", "(415) 555-0101", "+14155550101"),
    ("phone", "+1 415 555 0101 ext. 12", "+14155550101"),
    ("phone", "0044 20 7946 0958", "+442079460958"),
    ("phone", "011 55 11 91234 5678", "+5511912345678"),
    ("phone", "1-415-555-0101", "+14155550101"),
    ("phone", "12", None),
    ("user_id", "  u-1 ", "u-1"),
    ("anonymous_id", "Anon-X", "Anon-X"),
])
def test_identifiers_are_normalised_as_the_dbt_macros_do(conn, identifier_type, value, expected):
    assert normalize_identifier(conn, RULES, identifier_type, value) == expected


def test_python_and_sql_hashes_agree(conn):
    sql = privacy.hash_sql("?", "?", "?")
    assert conn.execute(f"select {sql}", [SALT, "email", "a@b.co"]).fetchone()[0] == identifier_hash(SALT, "email", "a@b.co")
    assert identifier_hash(SALT, "email", "a@b.co") != identifier_hash("other", "email", "a@b.co")
    assert identifier_hash(SALT, "email", "x") != identifier_hash(SALT, "user_id", "x")


@pytest.mark.parametrize("name, text", [
    ("r.json", '[{"action": "delete", "identifier": "email:a@b.co", "requested_by": "dpo"}]'),
    ("r.jsonl", '{"action": "delete", "identifier_type": "email", "identifier_value": "a@b.co", "requested_by": "dpo"}\n'),
    ("r.yml", "requests:\n  - {action: delete, identifier: 'email:a@b.co', requested_by: dpo}\n"),
    ("r.csv", "action,identifier_type,identifier_value,requested_by\ndelete,email,a@b.co,dpo\n"),
])
def test_request_files_in_every_format(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    (item,) = read_request_file(path)
    request = PrivacyRequest.from_mapping(item, name)
    assert (request.action, request.identifier_type, request.identifier_value, request.requested_by) == (
        "delete", "email", "a@b.co", "dpo")
    assert request.request_id.startswith("req-") and request.problem(RULES) is None


@pytest.mark.parametrize("fields, problem", [
    ({"action": "forget", "identifier": "email:a@b.co", "requested_by": "x"}, "unknown action"),
    ({"action": "delete", "identifier": "shoe_size:42", "requested_by": "x"}, "unknown identifier type"),
    ({"action": "delete", "identifier": "email:", "requested_by": "x"}, "no identifier value"),
    ({"action": "delete", "identifier": "email:a@b.co"}, "requested_by is required"),
])
def test_invalid_requests_say_why(fields, problem):
    assert problem in PrivacyRequest.from_mapping(fields, "t").problem(RULES)


def test_values_match_as_whole_tokens_only():
    import re

    pattern = re.compile(text_match_pattern(["bo@example.com", "+14155550101", "ab"]))
    assert pattern.search('{"email":"bo@example.com"}')
    assert pattern.search("bo@example.com,other")
    assert not pattern.search('{"email":"jimbo@example.com"}')
    assert not pattern.search("+141555501019")
    assert not pattern.search("ab cd")  # too short to match inside text (whole columns only)


def _tombstone(conn, identifier_type, value, table="tombstones"):
    privacy.create_privacy_tables(conn)
    conn.execute(f"insert into privacy.{table} values (?, ?, 'req', now())",
                 [identifier_type, identifier_hash(SALT, identifier_type, value)])


def _ingest(conn, landing):
    screen = PrivacyScreen.load(conn, SALT, RULES)
    return ingest_landing_dir(conn, landing, screen=screen)


def test_the_screen_rejects_erased_and_locked_identities_without_keeping_their_text(tmp_path, conn):
    _tombstone(conn, "email", "dana@example.com")
    _tombstone(conn, "phone", "+14155550103", table="locks")
    write_jsonl(tmp_path / "events" / "a.jsonl", [
        {"type": "identify", "messageId": "m1", "userId": "u1", "traits": {"email": " DANA@example.com"}},
        {"type": "track", "messageId": "m2", "anonymousId": "a2", "context": {"traits": {"phone": "(415) 555-0103"}}},
        {"type": "track", "messageId": "m3", "anonymousId": "a3"},
        '{"type": "track", "broken": "dana@example.com"',
        '{"type": "track", "broken": "someone@example.com"',
    ])
    (tmp_path / "contacts").mkdir()
    (tmp_path / "contacts" / "list.csv").write_text("email,phone,name\ndana@example.com,,Dana\nsam@example.org,,Sam\n"
                                                    ",415-555-0103,Ravi\n")
    summary = _ingest(conn, tmp_path)
    assert summary.accepted == {"tracks": 1, "contacts": 1}
    assert summary.rejected == {"erased_identity": 2, "locked_identity": 2, "malformed_json": 2}
    rows = conn.execute("select file_path, line_number, reason, raw_text is null from raw.rejected_records order by 1, 2"
                        ).fetchall()
    assert rows == [
        ("contacts/list.csv", 2, "erased_identity", True),
        ("contacts/list.csv", 4, "locked_identity", True),
        ("events/a.jsonl", 1, "erased_identity", True),
        ("events/a.jsonl", 2, "locked_identity", True),
        ("events/a.jsonl", 4, "malformed_json", True),  # its text held an erased e-mail
        ("events/a.jsonl", 5, "malformed_json", False),
    ]
    loaded = conn.execute("select sum(lines_total), sum(lines_accepted), sum(lines_rejected) from raw.loaded_files"
                          ).fetchone()
    assert loaded == (8, 2, 6)


def test_previous_id_and_custom_columns_are_screened_too(tmp_path, conn):
    _tombstone(conn, "anonymous_id", "old-cookie")
    write_jsonl(tmp_path / "events" / "a.jsonl", [
        {"type": "alias", "messageId": "m1", "previousId": "old-cookie", "userId": "u9"},
        {"type": "alias", "messageId": "m2", "previousId": "other-cookie", "userId": "u9"},
    ])
    summary = _ingest(conn, tmp_path)
    assert summary.accepted == {"aliases": 1} and summary.rejected == {"erased_identity": 1}


def test_without_tombstones_or_locks_there_is_no_screen(conn):
    assert PrivacyScreen.load(conn, SALT, RULES) is None


def _requests(tmp_path, lines: list[dict]) -> Path:
    folder = tmp_path / "landing" / "privacy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requests.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp_path / "landing"


def test_lock_then_unlock_and_every_request_is_processed_once(tmp_path, conn):
    landing = _requests(tmp_path, [
        {"request_id": "r1", "action": "lock", "identifier": "user_id:u1", "requested_by": "dpo"},
        {"request_id": "r2", "action": "bogus", "identifier": "user_id:u1", "requested_by": "dpo"},
    ])
    batch = process_requests(conn, landing, [], rules=RULES, salt=SALT, export_dir=tmp_path / "exports")
    assert batch.outcomes == Counter({("lock", "completed"): 1, ("bogus", "invalid"): 1})
    assert not (landing / "privacy" / "requests.jsonl").exists()  # it names the person: removed once recorded
    write_jsonl(landing / "events" / "a.jsonl", [{"type": "track", "messageId": "m1", "userId": " u1 "}])
    assert _ingest(conn, landing).rejected == {"locked_identity": 1}

    batch = process_requests(conn, landing, [{"request_id": "r3", "action": "unlock", "identifier": "user_id:u1",
                                              "requested_by": "dpo"},
                                             {"request_id": "r1", "action": "lock", "identifier": "user_id:u1",
                                              "requested_by": "dpo"}],
                             rules=RULES, salt=SALT, export_dir=tmp_path / "exports")
    assert batch.outcomes == Counter({("unlock", "completed"): 1}) and batch.skipped == 1
    write_jsonl(landing / "events" / "b.jsonl", [{"type": "track", "messageId": "m2", "userId": "u1"}])
    assert _ingest(conn, landing).accepted == {"tracks": 1}


def test_an_unreadable_request_file_is_recorded_once_and_left_in_place(tmp_path, conn):
    folder = tmp_path / "landing" / "privacy"
    folder.mkdir(parents=True)
    (folder / "bad.json").write_text("{not json")
    for _ in range(2):
        process_requests(conn, tmp_path / "landing", [], rules=RULES, salt=SALT, export_dir=tmp_path / "exports")
    assert conn.execute("select outcome, source from privacy.requests").fetchall() == [("invalid", "privacy/bad.json")]
    assert (folder / "bad.json").exists()


def test_delete_erases_matching_rows_in_every_schema_and_counts_raw_lines(tmp_path, conn):
    """No marts yet (the person never got built): the raw lines carrying the value go, the rest stays."""
    write_jsonl(tmp_path / "landing" / "events" / "a.jsonl", [
        {"type": "identify", "messageId": "m1", "userId": "u1", "traits": {"email": "dana@example.com"}},
        {"type": "track", "messageId": "m2", "userId": "u2", "properties": {"note": "jimbo.dana@example.com"}},
        '{"broken": "dana@example.com"',
    ])
    ingest_landing_dir(conn, tmp_path / "landing")
    conn.execute("create schema custom; create table custom.notes (who varchar, note json)")
    conn.execute("""insert into custom.notes values ('x', '{"mail": "DANA@example.com"}'), ('y', '{}')""")
    batch = process_requests(conn, tmp_path / "landing", [
        {"request_id": "d1", "action": "delete", "identifier": "email:dana@example.com", "requested_by": "dpo"}],
        rules=RULES, salt=SALT, export_dir=tmp_path / "exports")
    assert batch.outcomes == Counter({("delete", "completed"): 1})
    assert conn.execute("select message_id from raw.identifies").fetchall() == []
    assert conn.execute("select message_id from raw.tracks").fetchall() == [("m2",)]
    assert conn.execute("select count(*) from raw.rejected_records").fetchone()[0] == 0
    assert conn.execute("select who from custom.notes").fetchall() == [("y",)]
    assert conn.execute("select sum(accepted_lines), sum(rejected_lines) from privacy.erased_lines").fetchone() == (1, 1)
    by_table = json.loads(conn.execute("select rows_erased_by_table from privacy.requests").fetchone()[0])
    assert by_table == {"custom.notes": 1, "raw.identifies": 1, "raw.rejected_records": 1}


def test_exports_hash_personal_columns_once():
    from orchestration.assets.exports import personal_columns

    assert personal_columns("m", hashed=False) == "m.email, m.phone"
    assert personal_columns("m", hashed=True) == "sha256(m.email) as email_sha256, sha256(m.phone) as phone_sha256"
    # Already hashed in the marts: renamed, not hashed again.
    assert personal_columns("m", hashed=True, hashed_in_marts=True) == "m.email as email_sha256, m.phone as phone_sha256"


def test_pii_flags_from_the_environment_or_the_project(monkeypatch):
    monkeypatch.setenv("HASH_PII_IN_EXPORTS", "yes")
    assert settings.hash_pii_in_exports() is True
    monkeypatch.setenv("HASH_PII_IN_EXPORTS", "")
    assert settings.hash_pii_in_exports() is False  # dbt_project.yml's default
    monkeypatch.setenv("HASH_PII_IN_EXPORTS", "maybe")
    with pytest.raises(ValueError, match="expected true or false"):
        settings.hash_pii_in_exports()


def test_requests_given_as_the_run_configuration_of_the_dagster_asset(tmp_path):
    import dagster as dg

    from orchestration.assets.privacy import process_privacy_requests
    from orchestration.resources import Warehouse
    from tests.conftest import WAREHOUSE_FILE_NAME, environment

    database = tmp_path / WAREHOUSE_FILE_NAME
    run_config = {"ops": {"process_privacy_requests": {"config": {"requests": [
        {"action": "lock", "identifier": "email:Kim@Example.com", "requested_by": "dpo", "request_id": "cfg-1"}]}}}}
    with environment(DUCKDB_PATH=database, LANDING_DIR=tmp_path / "landing", EXPORT_DIR=tmp_path / "exports",
                     PRIVACY_SALT=SALT):
        result = dg.materialize([process_privacy_requests], resources={"warehouse": Warehouse()}, run_config=run_config)
    assert result.success
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("select request_id, source, outcome from privacy.requests").fetchall() == [
            ("cfg-1", "run_config", "completed")]
        assert conn.execute("select identifier_hash from privacy.locks").fetchone()[0] == identifier_hash(
            SALT, "email", "kim@example.com")


def test_past_export_files_lose_the_persons_rows_only(tmp_path, conn):
    folder = tmp_path / "exports" / "audience"
    (folder / "changes").mkdir(parents=True)
    conn.execute(f"copy (select * from (values ('p1', 'dana@x.com'), ('p2', 'jimbo.dana@x.com')) as t(profile_id, email))"
                 f" to '{folder / 'members.parquet'}' (format parquet)")
    (folder / "changes" / "1.csv").write_text("change,profile_id,email\nentered,p1,\nentered,p2,sam@x.com\n")
    (tmp_path / "exports" / "privacy").mkdir()
    (tmp_path / "exports" / "privacy" / "old.json").write_text('{"profile_id": "p1"}')
    (tmp_path / "exports" / "privacy" / "other.json").write_text('{"profile_id": "p2"}')
    person = privacy.Person(profile_ids=["p1"], identifiers=[("email", "dana@x.com")])
    assert privacy.scrub_export_files(conn, tmp_path / "exports", person) == 3
    assert conn.execute(f"select profile_id from '{folder / 'members.parquet'}'").fetchall() == [("p2",)]
    assert (folder / "changes" / "1.csv").read_text() == "change,profile_id,email\nentered,p2,sam@x.com\n"
    assert sorted(p.name for p in (tmp_path / "exports" / "privacy").iterdir()) == ["other.json"]
