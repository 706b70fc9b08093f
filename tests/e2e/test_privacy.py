"""Privacy requests through the real job: export, lock, delete, then a replay of every landing file.

Once per session, on a copy of the sample's first build (``sample_runs.copy_of_first_build``):

1. the sample data as shipped (that first build);
2. requests: export Dana (the Amplitude webinar attendee who signed up), lock Ravi's user id, export
   the hashed PII of the audiences (``HASH_PII_IN_EXPORTS``);
3. a new message from Ravi lands (locked), and a request deletes Dana, named by her phone as typed,
   another Noor, who is only in the Snowplow source (a registered landing source);
4. every file of every source (events, contact lists, Snowplow) is landed again under a new name (a
   replay, as Segment's users suffer it): nothing of Dana or Noor may come back.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from orchestration.location.runner import JobOutcome, run_build_warehouse
from tests.conftest import environment
from tests.e2e.conftest import dbt_log_messages, run_metadata

DANA = {("email", "dana.argelies@example.com"), ("phone", "+14155550101"), ("user_id", "amp-user-dana"),
        ("anonymous_id", "amp-web-dana")}
DANA_VALUES = sorted(value for _, value in DANA)
NOOR_VALUES = ["noor.haddad@example.com", "sp-duid-b21c"]
RAVI_LATE = {"type": "track", "messageId": "ravi-late-1", "userId": "amp-user-ravi", "event": "Page Viewed",
             "timestamp": "2024-05-01T10:00:00Z"}


@dataclass
class PrivacyRuns:
    landing: Path
    database: Path
    exports: Path
    outcomes: list[JobOutcome]
    export_document: dict
    hashed_members: list[dict]


def occurrences(database: Path, values: list[str]) -> list[tuple]:
    """Every (schema, table, column, value) where a value occurs in any text or JSON column, anywhere."""
    found = []
    with duckdb.connect(str(database), read_only=True) as conn:
        columns = conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON')").fetchall()
        for schema, table, column in columns:
            for value in values:
                hits = conn.execute(
                    f'select count(*) from "{schema}"."{table}" where contains(lower("{column}"::varchar), ?)',
                    [value.lower()]).fetchone()[0]
                if hits:
                    found.append((schema, table, column, value, hits))
    return found


@pytest.fixture(scope="session")
def privacy_runs(tmp_path_factory, sample_runs, dagster_instance) -> PrivacyRuns:
    # Run 1, the sample as shipped, is sample_runs' first build: a copy of it is built on.
    sample = sample_runs.copy_of_first_build(tmp_path_factory.mktemp("privacy"))
    landing, database, exports = sample.landing, sample.database, sample.exports
    requests = landing / "privacy"
    outcomes = [sample_runs.first.outcome]
    with sample.environment(PRIVACY_SALT="test-salt"):
        requests.mkdir()
        (requests / "2024-06-01-export.jsonl").write_text(
            json.dumps({"request_id": "req-export-dana", "action": "export",
                        "identifier": "email: Dana.Argelies@Example.com", "requested_by": "dpo@shop.example"}) + "\n")
        (requests / "2024-06-01-lock.yml").write_text(
            "- {request_id: req-lock-ravi, action: lock, identifier_type: user_id, identifier_value: amp-user-ravi,"
            " requested_by: support@shop.example}\n")
        with environment(HASH_PII_IN_EXPORTS="true"):
            outcomes.append(run_build_warehouse(dagster_instance))
        export_document = json.loads((exports / "privacy" / "req-export-dana.json").read_text())
        with (exports / "webinar_attendees_without_account" / "members.csv").open() as handle:
            hashed_members = list(csv.DictReader(handle))

        (landing / "events" / "late").mkdir()
        (landing / "events" / "late" / "ravi.jsonl").write_text(json.dumps(RAVI_LATE) + "\n")
        (requests / "2024-06-02-delete.csv").write_text(
            "request_id,action,identifier_type,identifier_value,requested_by\n"
            'req-delete-dana,delete,phone,"(415) 555-0101",dpo@shop.example\n'
            "req-delete-noor,delete,email,Noor.Haddad@Example.com,dpo@shop.example\n")
        outcomes.append(run_build_warehouse(dagster_instance))

        replay = landing / "events" / "replay"
        for path in sorted((landing / "events").rglob("*.jsonl*")):
            if replay not in path.parents:
                target = replay / path.relative_to(landing / "events").as_posix().replace("/", "__")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
        for path in sorted((landing / "contacts").glob("*.csv")) + sorted((landing / "snowplow").glob("*.jsonl")):
            shutil.copy(path, path.with_name(f"replayed_{path.name}"))
        outcomes.append(run_build_warehouse(dagster_instance))
    return PrivacyRuns(landing, database, exports, outcomes, export_document, hashed_members)


def test_every_run_succeeds_without_failed_checks(privacy_runs: PrivacyRuns):
    for outcome in privacy_runs.outcomes:
        assert outcome.success, outcome
        assert outcome.failed_checks == []  # landed_lines_reconcile counts erased lines


def test_requests_with_nothing_new_landed_build_only_what_time_changes(privacy_runs: PrivacyRuns, dagster_instance):
    """The requests read models that are current when nothing landed since their build: the run that
    has only requests builds the models that change as time passes (the privacy step follows the
    last of them), not every model again; the run after a late file builds them all."""
    def built(outcome) -> set[str]:
        return {key.split("/")[-1] for key in run_metadata(dagster_instance, outcome.run_id)
                if key.split("/")[0] in ("staging", "intermediate", "marts", "traits", "audiences")}
    identity_models = {"stg_segment__tracks", "int_identifiers", "profile_events", "profiles"}
    requests_only, with_a_late_file = built(privacy_runs.outcomes[1]), built(privacy_runs.outcomes[2])
    assert "audience_membership_history" in requests_only and not requests_only & identity_models
    assert identity_models <= with_a_late_file


def test_export_holds_every_identifier_trait_audience_and_event_of_the_person(privacy_runs: PrivacyRuns):
    document = privacy_runs.export_document
    assert {(i["identifier_type"], i["identifier_value"]) for i in document["identifiers"]} == DANA
    assert document["profile"]["email"] == "dana.argelies@example.com"
    assert document["traits"]["name"] == "Dana Argelies"
    assert document["computed_traits"]["webinars_attended"] == 1
    assert {e["message_id"] for e in document["events"]} >= {"amp-002", "contact:webinar_attendees:1"}
    assert all(e["file_path"] for e in document["events"])
    assert isinstance(document["audiences"], list) and isinstance(document["audience_history"], list)
    assert {link["to_value"] for link in document["identity_links"]} & {"amp-user-dana", "dana.argelies@example.com"}


def test_hashed_pii_option_writes_sha256_of_normalised_values(privacy_runs: PrivacyRuns):
    import hashlib

    members = privacy_runs.hashed_members
    assert members and set(members[0]) >= {"email_sha256", "phone_sha256"} and "email" not in members[0]
    expected = hashlib.sha256(b"mia.chen@example.net").hexdigest()
    assert expected in {m["email_sha256"] for m in members}


def test_the_audit_log_records_who_what_when_without_the_identifier(privacy_runs: PrivacyRuns):
    with duckdb.connect(str(privacy_runs.database), read_only=True) as conn:
        log = {row[0]: row for row in conn.execute(
            "select request_id, action, identifier_type, identifier_hash, requested_by, source, processed_at, outcome,"
            " profiles_found, identifiers_erased, rows_erased from privacy.requests").fetchall()}
    assert set(log) == {"req-export-dana", "req-lock-ravi", "req-delete-dana", "req-delete-noor"}
    export, lock, delete = log["req-export-dana"], log["req-lock-ravi"], log["req-delete-dana"]
    assert export[1:3] == ("export", "email") and export[4:6] == ("dpo@shop.example", "privacy/2024-06-01-export.jsonl")
    assert lock[1] == "lock" and lock[7] == "completed"
    assert delete[1:3] == ("delete", "phone") and delete[7] == "completed"
    assert delete[8:10] == (1, 4) and delete[10] > 0
    assert all(len(row[3]) == 64 for row in log.values())  # a SHA-256, never the value
    assert not (privacy_runs.landing / "privacy").exists() or not list((privacy_runs.landing / "privacy").iterdir())


def test_a_locked_identifier_is_rejected_at_ingestion(privacy_runs: PrivacyRuns):
    with duckdb.connect(str(privacy_runs.database), read_only=True) as conn:
        rows = conn.execute("select file_path, line_number, raw_text from raw.rejected_records "
                            "where reason = 'locked_identity'").fetchall()
        in_raw = conn.execute("select count(*) from raw.tracks where message_id = 'ravi-late-1'").fetchone()[0]
    assert ("events/late/ravi.jsonl", 1, None) in rows
    assert in_raw == 0


def test_after_a_delete_and_a_replay_no_table_holds_the_person(privacy_runs: PrivacyRuns):
    assert occurrences(privacy_runs.database, DANA_VALUES) == []


def test_a_person_only_in_a_registered_source_does_not_come_back_with_its_replay(privacy_runs: PrivacyRuns):
    """Before: registered sources were not screened, and Noor's profile came back from the Snowplow replay."""
    assert occurrences(privacy_runs.database, NOOR_VALUES) == []
    with duckdb.connect(str(privacy_runs.database), read_only=True) as conn:
        rejected = conn.execute("select count(*) from raw.rejected_records where reason = 'erased_identity' "
                                "and file_path = 'snowplow/replayed_enriched_events.jsonl'").fetchone()[0]
        others = conn.execute("select count(*) from raw.snowplow where file_path = 'snowplow/replayed_enriched_events.jsonl'"
                              ).fetchone()[0]
    assert rejected == 2  # Noor's two lines; the others' lines land (their copies are duplicates by message id)
    assert others == 4


def test_the_replay_was_loaded_and_the_persons_lines_were_rejected_as_erased(privacy_runs: PrivacyRuns):
    with duckdb.connect(str(privacy_runs.database), read_only=True) as conn:
        replayed = conn.execute("select count(*) from raw.loaded_files where file_path like 'events/replay/%' "
                                "or file_path like 'contacts/replayed_%'").fetchone()[0]
        erased = conn.execute("select file_path, raw_text from raw.rejected_records "
                              "where reason = 'erased_identity' order by all").fetchall()
        profiles = conn.execute("select count(*) from marts.profile_identifiers where identifier_value in "
                                "(select unnest(?::varchar[]))", [DANA_VALUES]).fetchone()[0]
    assert replayed > 0
    files = {path for path, _ in erased}
    assert "contacts/replayed_webinar_attendees.csv" in files
    assert any(path.startswith("events/replay/stories__amplitude") for path in files)
    assert all(text is None for _, text in erased)  # the rejection keeps no copy of the data
    assert profiles == 0


@pytest.mark.parametrize("model", ["int_identity_conflicts", "int_identity_nodes"])
def test_the_build_after_a_delete_summarises_every_identifier_again(privacy_runs: PrivacyRuns, model):
    """The delete took rows that junk detection and the graph's nodes had read (a neighbour gone can
    take a shared device below its threshold): the next build summarises every identifier again,
    not only the new ones."""
    before, after = (dbt_log_messages(outcome.run_id, f"{model}: counting") for outcome in privacy_runs.outcomes[2:4])
    assert len(before) == 1 and "rows written and" in before[0], before
    assert after == [f"{model}: counting every identifier (rows counted are gone)"]


def test_no_export_file_holds_the_person_after_the_delete(privacy_runs: PrivacyRuns):
    for path in privacy_runs.exports.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json"):
            text = path.read_text().lower()
            assert not [v for v in DANA_VALUES + NOOR_VALUES if v in text], path
    assert not (privacy_runs.exports / "privacy" / "req-export-dana.json").exists()


def test_other_people_are_untouched_by_the_delete(privacy_runs: PrivacyRuns):
    with duckdb.connect(str(privacy_runs.database), read_only=True) as conn:
        ravi = conn.execute("select count(*) from marts.profile_identifiers where identifier_value = 'amp-user-ravi'"
                            ).fetchone()[0]
        sam = conn.execute("select count(*) from marts.profile_identifiers where identifier_value = 'sam.lee@example.org'"
                           ).fetchone()[0]
    assert (ravi, sam) == (1, 1)


def test_no_byte_of_the_person_is_left_in_the_database_file(privacy_runs: PrivacyRuns):
    """The run that erased Dana compacted the file: her values are not in its free blocks either."""
    data = privacy_runs.database.read_bytes().lower()
    assert [value for value in DANA_VALUES if value.encode() in data] == []
