"""Privacy requests without dbt: parsing, normalisation, hashes, the ingestion screen, erasure by
lineage, and requests as hostile input."""

import json
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from orchestration.core import settings
from orchestration.landing.ingestion import ingest_landing_dir
from orchestration.privacy import requests as privacy
from orchestration.privacy.requests import (
    PrivacyRequest,
    identifier_hash,
    normalize_identifier,
    process_requests,
    read_request_file,
)
from orchestration.privacy.screen import PrivacyScreen
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
    (request,) = read_request_file(path)
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
    assert batch.outcomes == Counter({("lock", "completed"): 1, ("unknown", "invalid"): 1})
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


def test_an_unreadable_request_file_is_recorded_once_and_set_aside(tmp_path, conn):
    folder = tmp_path / "landing" / "privacy"
    folder.mkdir(parents=True)
    (folder / "bad.json").write_text("{not json")
    for _ in range(2):
        process_requests(conn, tmp_path / "landing", [], rules=RULES, salt=SALT, export_dir=tmp_path / "exports")
    assert conn.execute("select outcome, source from privacy.requests").fetchall() == [("invalid", "privacy/bad.json")]
    assert not (folder / "bad.json").exists()
    assert [p.suffix for p in (folder / "invalid").iterdir()] == [".json"]


def test_exports_hash_personal_columns_once():
    from orchestration.location.assets.exports import personal_columns

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

    from orchestration.location.assets.privacy import process_privacy_requests
    from orchestration.location.resources import Warehouse
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
    assert privacy.scrub_export_files(conn, tmp_path / "exports", ["p1"]) == 3
    assert conn.execute(f"select profile_id from '{folder / 'members.parquet'}'").fetchall() == [("p2",)]
    assert (folder / "changes" / "1.csv").read_text() == "change,profile_id,email\nentered,p2,sam@x.com\n"
    assert sorted(p.name for p in (tmp_path / "exports" / "privacy").iterdir()) == ["other.json"]


# ---------------------------------------------------------------------------------------------
# Erasure by lineage
# ---------------------------------------------------------------------------------------------

DANA_LINES = [
    {"type": "identify", "messageId": "m1", "userId": "u1", "traits": {"email": "dana@example.com"}},
    {"type": "track", "messageId": "m2", "userId": "u2", "event": "Signed Up",
     "properties": {"note": "dana@example.com", "plan": "track"}},  # Sam's event mentions Dana: not hers
    {"type": "track", "messageId": "m3", "userId": "u1", "anonymousId": "dev-shared", "event": "track"},
    {"type": "track", "messageId": "m4", "userId": "u2", "anonymousId": "dev-shared", "event": "track"},
    {"type": "track", "messageId": "m5", "anonymousId": "old-dana", "event": "null"},
    '{"type": "track", "broken": "dana@example.com"',
    '{"type": "track", "broken": "jimbo.dana@example.com"',
]


def _mini_warehouse(tmp_path, conn) -> Path:
    """Raw tables by the real ingestion, and the keys dbt would build: Dana (pD, who absorbed pOld)
    and Sam (pS) share a junk device."""
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "a.jsonl", DANA_LINES)
    ingest_landing_dir(conn, landing)
    conn.execute("""
        create schema marts; create schema intermediate; create schema audiences; create schema custom;
        create table marts.profile_identifiers as select * from (values
            ('user_id', 'u1', 'pD'), ('email', 'dana@example.com', 'pD'), ('anonymous_id', 'old-dana', 'pD'),
            ('anonymous_id', 'dev-shared', 'pD'), ('user_id', 'u2', 'pS'))
            as t(identifier_type, identifier_value, profile_id);
        create table intermediate.int_identity_nodes as select * from (values
            ('anonymous_id', 'dev-shared', true), ('user_id', 'u1', false)) as t(identifier_type, identifier_value, is_junk);
        create table intermediate.int_identifiers as select * from (values
            ('m1', 'user_id', 'u1'), ('m1', 'email', 'dana@example.com'), ('m2', 'user_id', 'u2'),
            ('m3', 'user_id', 'u1'), ('m3', 'anonymous_id', 'dev-shared'), ('m4', 'user_id', 'u2'),
            ('m4', 'anonymous_id', 'dev-shared'), ('m5', 'anonymous_id', 'old-dana'))
            as t(message_id, identifier_type, identifier_value);
        create table marts.profile_events as select *, now() as event_at from (values
            ('m1', 'pD'), ('m2', 'pS'), ('m3', 'pD'), ('m4', 'pS'), ('m5', 'pD')) as t(message_id, profile_id);
        create table marts.profile_merges as
            select 'pOld' as merged_profile_id, 'pD' as surviving_profile_id, now() as merged_at;
        create table audiences.audience__x as select unnest(['pD', 'pS', 'pOld']) as profile_id;
        create table custom.notes as select 'x' as who, 'dana@example.com' as note;
    """)
    return landing


def _everything(conn) -> dict:
    tables = conn.execute("select schema_name, table_name from duckdb_tables() where schema_name != 'privacy' "
                          "and not temporary order by all").fetchall()
    return {f"{s}.{t}": sorted(map(str, conn.execute(f'select * from "{s}"."{t}"').fetchall())) for s, t in tables}


def test_a_delete_finds_the_person_by_keys_and_leaves_everyone_else(tmp_path, conn, monkeypatch):
    landing = _mini_warehouse(tmp_path, conn)
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "privacy_test.duckdb"))
    pictures = settings.lookup_graph_dir()
    pictures.mkdir(parents=True)
    for name in ("pD.dot", "pD.svg", "pOld.dot", "pS.dot"):
        (pictures / name).write_text("graph {}")
    batch = process_requests(conn, landing, [{"request_id": "d1", "action": "delete", "identifier": "email:Dana@Example.com",
                                              "requested_by": "dpo"}], rules=RULES, salt=SALT, export_dir=tmp_path / "x")
    assert batch.outcomes == Counter({("delete", "completed"): 1})
    assert conn.execute("select message_id from raw.identifies").fetchall() == []
    assert sorted(conn.execute("select message_id from raw.tracks").fetchall()) == [("m2",), ("m4",)]
    assert conn.execute("select line_number from raw.rejected_records").fetchall() == [(7,)]  # jimbo's stays
    assert sorted(conn.execute("select message_id, profile_id from marts.profile_events").fetchall()) == [
        ("m2", "pS"), ("m4", "pS")]
    assert conn.execute("select * from marts.profile_identifiers").fetchall() == [("user_id", "u2", "pS")]
    assert sorted(conn.execute("select * from intermediate.int_identifiers").fetchall()) == [
        ("m2", "user_id", "u2"), ("m4", "anonymous_id", "dev-shared"), ("m4", "user_id", "u2")]
    assert conn.execute("select * from intermediate.int_identity_nodes").fetchall() == [
        ("anonymous_id", "dev-shared", True)]  # a junk device is in other people's data: it stays
    assert conn.execute("select * from audiences.audience__x").fetchall() == [("pS",)]  # pOld merged into pD
    assert conn.execute("select * from custom.notes").fetchall() == [("x", "dana@example.com")]  # no key: not hers
    assert conn.execute("select sum(accepted_lines), sum(rejected_lines) from privacy.erased_lines").fetchone() == (3, 1)
    tombstoned = {r[0] for r in conn.execute("select identifier_hash from privacy.tombstones").fetchall()}
    assert tombstoned == {identifier_hash(SALT, t, v) for t, v in
                          [("user_id", "u1"), ("email", "dana@example.com"), ("anonymous_id", "old-dana")]}
    audit = conn.execute("select outcome, profiles_found, identifiers_erased, rows_erased, rows_erased_by_table "
                         "from privacy.requests").fetchone()
    assert sorted(p.name for p in pictures.iterdir()) == ["pS.dot"]  # the lookup's pictures of Dana are gone
    assert audit[:4] == ("completed", 2, 3, 20)
    assert json.loads(audit[4]) == {
        "audiences.audience__x": 2, "intermediate.int_identifiers": 5, "intermediate.int_identity_nodes": 1,
        "marts.profile_events": 3, "marts.profile_identifiers": 4, "marts.profile_merges": 1, "raw.identifies": 1,
        "raw.rejected_records": 1, "raw.tracks": 2}

    # The same file again, under a new name: Dana's lines are rejected, Sam's (the junk device too) land.
    (landing / "events" / "a.jsonl").rename(landing / "events" / "replayed.jsonl")
    summary = _ingest(conn, landing)
    assert summary.rejected == {"erased_identity": 3, "malformed_json": 2}
    assert summary.accepted == {"tracks": 2}


@pytest.mark.parametrize("identifier", ["user_id:track", "anonymous_id:Signed Up", "user_id:null", "email:nobody@x.co",
                                        "anonymous_id:dev-shared"])
def test_a_delete_for_an_identifier_no_one_holds_erases_nothing(tmp_path, conn, identifier):
    """Before: a value-search erasure took every row holding the word (raw.tracks lost every row)."""
    landing = _mini_warehouse(tmp_path, conn)
    before = _everything(conn)
    process_requests(conn, landing, [{"request_id": "d1", "action": "delete", "identifier": identifier,
                                      "requested_by": "dpo"}], rules=RULES, salt=SALT, export_dir=tmp_path / "x")
    assert _everything(conn) == before
    outcome, rows = conn.execute("select outcome, rows_erased from privacy.requests").fetchone()
    assert (outcome, rows) == (("refused", 0) if identifier.endswith("dev-shared") else ("not_found", 0))
    assert conn.execute("select count(*) from privacy.tombstones").fetchone()[0] == 0


def test_registered_sources_are_screened_by_their_declared_identifiers_or_every_string(tmp_path, conn):
    from orchestration.landing.sources import LandingSource

    _tombstone(conn, "user_id", "u1")
    declared = LandingSource("tracker", "tracker", "jsonl", "id", (("who.uid", "user_id"),))
    undeclared = LandingSource("crm", "crm", "csv")
    write_jsonl(tmp_path / "tracker" / "a.jsonl", [{"id": "t1", "who": {"uid": " u1 "}}, {"id": "t2", "who": {"uid": "u2"}},
                                                   {"id": "t3", "note": "u1"}])  # not where it carries identifiers
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "a.csv").write_text("account,name\nu1,Dana\nu2,Sam\n")
    screen = PrivacyScreen.load(conn, SALT, RULES)
    summary = ingest_landing_dir(conn, tmp_path, sources=[declared, undeclared], screen=screen)
    assert summary.rejected == {"erased_identity": 2}
    assert summary.accepted == {"tracker": 2, "crm": 1}
    assert sorted(conn.execute("select message_id from raw.tracker").fetchall()) == [("t2",), ("t3",)]


# ---------------------------------------------------------------------------------------------
# Requests are untrusted input
# ---------------------------------------------------------------------------------------------

def _audit(conn) -> list[tuple]:
    return conn.execute("select request_id, action, outcome, detail from privacy.requests order by processed_at, request_id"
                        ).fetchall()


def test_hostile_requests_are_audited_invalid_while_the_valid_ones_run(tmp_path, conn):
    exports = tmp_path / "exports"
    landing = _mini_warehouse(tmp_path, conn)
    folder = landing / "privacy"
    folder.mkdir()
    valid = {"request_id": "ok-1", "action": "lock", "identifier": "user_id:u2", "requested_by": "dpo"}
    hostile_ids = ["../../../../" + str(tmp_path / "escape"), str(tmp_path / "abs" / "deep" / "x"), "a\0b", "r" * 300]
    lines = [json.dumps(valid), '["oops"]', "null", "{not json", '"text"'] + [
        json.dumps({"request_id": rid, "action": "export", "identifier": "user_id:u1", "requested_by": "dpo"})
        for rid in hostile_ids] + [
        json.dumps({"request_id": "big", "action": "delete", "identifier": "email:" + "a" * 2_000_000, "requested_by": "d"}),
        json.dumps({"request_id": "ok-2", "action": "export", "identifier": "email:dana@example.com", "requested_by": "dpo"})]
    (folder / "requests-dana@example.com.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "big.csv").write_text("request_id,action,identifier,requested_by\nc1,lock," + "x" * 200_000 + ",dpo\n"
                                    "c2,lock,user_id:u1,dpo\n")
    batch = process_requests(conn, landing, [], rules=RULES, salt=SALT, export_dir=exports)
    assert batch.outcomes == Counter({("lock", "completed"): 2, ("export", "completed"): 1, ("unknown", "invalid"): 6,
                                      ("export", "invalid"): 4})
    audit = _audit(conn)
    assert all(privacy.REQUEST_ID.fullmatch(request_id) for request_id, *_ in audit)
    reasons = sorted(detail for *_, outcome, detail in audit if outcome == "invalid")
    assert sum("request_id must be" in r for r in reasons) == 4
    assert sum("not a request object" in r for r in reasons) == 3 and sum("not JSON" in r for r in reasons) == 1
    assert any("longer than" in r for r in reasons) and any("unreadable CSV row" in r for r in reasons)
    assert [p.name for p in exports.rglob("*") if p.is_file()] == ["ok-2.json"]
    assert not (tmp_path / "escape.json").exists() and not (tmp_path / "abs").exists()
    # Both files left the inbox, under names holding no identifier; nothing blocks the next run.
    assert sorted(p.name for p in folder.iterdir()) == ["invalid"]
    assert all("dana" not in p.name for p in (folder / "invalid").iterdir())
    assert process_requests(conn, landing, [], rules=RULES, salt=SALT, export_dir=exports).outcomes == Counter()


def test_a_request_id_reused_for_another_request_is_refused_and_audited(tmp_path, conn):
    first = {"request_id": "r1", "action": "lock", "identifier": "user_id:u1", "requested_by": "dpo"}
    process_requests(conn, tmp_path, [first], rules=RULES, salt=SALT, export_dir=tmp_path / "x")
    batch = process_requests(conn, tmp_path, [first, {**first, "action": "delete"}, {**first, "action": "delete"}],
                             rules=RULES, salt=SALT, export_dir=tmp_path / "x")
    assert batch.skipped == 2 and batch.outcomes == Counter({("delete", "refused"): 1})
    assert [row[2:] for row in _audit(conn)] == [
        ("completed", "locked: lines carrying it are rejected at ingestion"),
        ("refused", "request_id already used for a different request")]


def test_five_thousand_requests_in_one_file_take_seconds(tmp_path, conn):
    """Before: one transaction per request, 3 min 19 s for 5,000 locks."""
    landing = _requests(tmp_path, [{"request_id": f"l{i}", "action": "lock", "identifier": f"user_id:u{i}",
                                    "requested_by": "dpo"} for i in range(5_000)])
    started = time.monotonic()
    batch = process_requests(conn, landing, [], rules=RULES, salt=SALT, export_dir=tmp_path / "x")
    seconds = time.monotonic() - started
    assert batch.outcomes == Counter({("lock", "completed"): 5_000})
    assert conn.execute("select count(*) from privacy.locks").fetchone()[0] == 5_000
    assert seconds < 30, f"{seconds:.1f} s"  # 0.25 s on the 2-core machine


def test_export_paths_stay_in_the_export_folder(tmp_path):
    assert privacy.export_path(tmp_path, "ok.1") == (tmp_path / "privacy" / "ok.1.json").resolve()
    for request_id in ("../x", "/tmp/x", "..", "a/b", ""):
        with pytest.raises(ValueError):
            privacy.export_path(tmp_path, request_id)
