"""End-to-end: the real Dagster job on the sample landing data (see conftest.py for the runs)."""

import csv
import gzip
from collections import defaultdict
from datetime import datetime

import pandas as pd
import pytest

from orchestration.identity.accuracy import load_truth
from orchestration.location.project import build_folder
from tests.e2e.conftest import SampleRuns

STORIES = {
    "antsomi: user A on devices 1, 3 and 7, signs up on 7": {
        ("user_id", "cid-5f4dcc3b"), ("anonymous_id", "antsomi-device-1"), ("anonymous_id", "antsomi-device-3"),
        ("anonymous_id", "antsomi-device-7"), ("email", "linh.tran@example.com"),
    },
    "cdp course: aaa-aaa-aaa subscribes, then signs up on the web": {
        ("anonymous_id", "aaa-aaa-aaa"), ("user_id", "97980cfea0067"), ("email", "example@thiscasestudy.com"),
    },
    "cdp course: bbb-bbb-bbb on mobile never logs in": {("anonymous_id", "bbb-bbb-bbb")},
    "intilery 1: multi-day, single device": {
        ("anonymous_id", "intilery-s1-web"), ("user_id", "intilery-user-1"), ("email", "peter@example.com"),
    },
    "intilery 2: multi-device, single login (web)": {
        ("anonymous_id", "intilery-s2-web"), ("user_id", "intilery-user-2"), ("email", "joanna@example.com"),
    },
    "intilery 2: the mobile device stays anonymous": {("anonymous_id", "intilery-s2-mobile")},
    "intilery 3: multi-device, multiple logins": {
        ("anonymous_id", "intilery-s3-web"), ("anonymous_id", "intilery-s3-mobile"),
        ("user_id", "intilery-user-3"), ("email", "michael@example.com"),
    },
    "amplitude: webinar attendee Dana signs up, merged on e-mail": {
        ("email", "dana.argelies@example.com"), ("phone", "+14155550101"),
        ("user_id", "amp-user-dana"), ("anonymous_id", "amp-web-dana"),
    },
    "amplitude: webinar attendee Ravi signs up, merged on phone": {
        ("phone", "+14155550103"), ("user_id", "amp-user-ravi"), ("anonymous_id", "amp-web-ravi"),
    },
    "amplitude: Sam never signs up, on two lists": {("email", "sam.lee@example.org"), ("phone", "+14155550102")},
    "amplitude: Mia never signs up": {("email", "mia.chen@example.net")},
    "amplitude: Olu never signs up": {("email", "olu@example.com"), ("phone", "+14155550105")},
    "store sign-up with a foreign mobile": {("email", "ana.souza@example.com"), ("phone", "+5511912345678")},
    "attractify: web and app channels, one user id, and the help centre Snowplow tracks": {
        ("anonymous_id", "attr-web-anon-1"), ("anonymous_id", "attr-app-anon-1"), ("anonymous_id", "sp-duid-7f3a"),
        ("user_id", "attr-user-42"), ("email", "kim@example.com"),
    },
    "snowplow: a newsletter subscriber's e-mail in a custom entity, normalised": {
        ("anonymous_id", "sp-duid-b21c"), ("email", "noor.haddad@example.com"),
    },
    "edge cases: an alias links a cookie to a user; junk ids link nothing": {
        ("anonymous_id", "edge-anon-1"), ("user_id", "edge-user-1"),
    },
}


def test_every_run_succeeds_and_only_the_junk_check_warns(sample_runs: SampleRuns):
    # The generated people include household devices, a client-bug id and a placeholder e-mail; the
    # second run finds nothing new and nothing that time changed: it builds nothing, and checks nothing again.
    junk = ["no_junk_identifiers_detected"]
    for name, run, warned in (("first", sample_runs.first, junk), ("second", sample_runs.second, []),
                              ("after_late_file", sample_runs.after_late_file, junk)):
        assert run.outcome.success, (name, run.outcome)
        assert run.outcome.failed_checks == [], name
        assert [check.split(":")[-1] for check in run.outcome.warned_checks] == warned, name


@pytest.mark.parametrize("story", STORIES)
def test_each_story_is_exactly_one_profile(sample_runs: SampleRuns, story: str):
    run = sample_runs.first
    expected = STORIES[story]
    profile_id = run.profile_of(*next(iter(expected)))
    assert run.identifiers_of(profile_id) == expected


def test_story_profiles_have_the_expected_fields(sample_runs: SampleRuns):
    run = sample_runs.first
    known = run.profile(run.profile_of("user_id", "97980cfea0067"))
    assert (known["user_id"], known["email"], known["is_anonymous"]) == (
        "97980cfea0067", "example@thiscasestudy.com", False)
    assert known["traits"] == {"email": "example@thiscasestudy.com", "first_name": "Fernando", "last_name": "Alonso"}
    assert known["first_seen_at"] == datetime(2015, 11, 20, 10, 0)
    assert known["event_count"] == 6  # bbb-bbb-bbb's install is another profile

    mobile = run.profile(run.profile_of("anonymous_id", "bbb-bbb-bbb"))
    assert (mobile["user_id"], mobile["email"], mobile["is_anonymous"], mobile["anonymous_id_count"]) == (
        None, None, True, 1)

    mia = run.profile(run.profile_of("email", "mia.chen@example.net"))
    assert (mia["is_anonymous"], mia["email"], mia["event_count"]) == (True, "mia.chen@example.net", 1)
    assert mia["traits"] == {"name": "Mia Chen", "attended_at": "2024-03-08"}
    assert mia["first_seen_at"] == datetime(2024, 3, 8)

    sam = run.profile(run.profile_of("email", "sam.lee@example.org"))
    assert sam["event_count"] == 2  # one record in each list
    assert sam["traits"] == {"name": "Sam Lee", "attended_at": "2024-03-08", "first_name": "Sam",
                             "last_name": "Lee", "signed_up_at": "2024-04-02"}

    ravi = run.profile(run.profile_of("user_id", "amp-user-ravi"))
    assert (ravi["phone"], ravi["is_anonymous"]) == ("+14155550103", False)
    assert ravi["traits"]["name"] == "Ravi Patel"


def test_traits_merge_last_non_null_wins_by_event_time(sample_runs: SampleRuns):
    run = sample_runs.first
    peter = run.profile(run.profile_of("user_id", "intilery-user-1"))
    # 'plan' changed from premium to basic later; the later identify sent name = null, which does not erase it.
    assert peter["traits"] == {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "basic"}


def test_rejected_records_carry_file_line_and_reason(sample_runs: SampleRuns):
    rejected = sample_runs.first.tables["rejected_records"]
    generated = rejected.file_path.str.startswith("events/generated-")
    assert set(rejected[generated].reason) <= {"malformed_json", "no_identity"}  # injected by the generator
    rejected = rejected[~generated]
    rows = [(r.file_path, r.line_number, r.reason) for r in rejected.itertuples()]
    assert rows == [
        ("contacts/badge_scans.csv", 1, "missing_identifier_columns"),
        ("events/edge_cases.jsonl", 4, "malformed_json"),
        ("events/edge_cases.jsonl", 5, "unknown_type"),
        ("events/edge_cases.jsonl", 6, "no_identity"),
    ]
    badge = rejected[rejected.file_path == "contacts/badge_scans.csv"].iloc[0]
    assert "'email'" in badge.detail and "'phone'" in badge.detail
    assert rejected[rejected.line_number == 4].raw_text.iloc[0] == '{"type":"track","messageId":"edge-003","event":"Broken"'


def _landing_lines(landing) -> dict[str, int]:
    """Non-blank lines of every event file and data rows of every contact file, counted apart from the product."""
    counts = {}
    for path in sorted([*(landing / "events").rglob("*.jsonl*"), *(landing / "snowplow").rglob("*.jsonl")]):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            counts[path.relative_to(landing).as_posix()] = sum(1 for line in handle if line.strip())
    for path in sorted((landing / "contacts").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            counts[path.relative_to(landing).as_posix()] = max(sum(1 for _ in csv.reader(handle)) - 1, 0)
    return counts


def test_every_landing_line_is_in_a_raw_table_or_rejected(sample_runs: SampleRuns):
    run = sample_runs.after_late_file
    accepted = defaultdict(int)
    for file_path in run.tables["raw_message_ids"].file_path:
        accepted[file_path] += 1
    for file_path in [*run.tables["raw_contacts"].file_path, *run.tables["raw_snowplow"].file_path]:
        accepted[file_path] += 1
    rejected = run.tables["rejected_records"].groupby("file_path").size().to_dict()
    for file_path, lines in _landing_lines(sample_runs.landing).items():
        if file_path == "contacts/badge_scans.csv":  # rejected as a whole: one record names the missing columns
            assert (accepted[file_path], rejected[file_path]) == (0, 1)
            continue
        assert accepted[file_path] + rejected.get(file_path, 0) == lines, file_path
    assert set(run.tables["loaded_files"].file_path) == set(_landing_lines(sample_runs.landing))


def test_every_accepted_message_is_in_profile_events_exactly_once(sample_runs: SampleRuns):
    run = sample_runs.after_late_file
    events = run.tables["profile_events"]
    assert events.message_id.is_unique
    segment = set(events[events.source == "segment"].message_id)
    assert segment == set(run.tables["raw_message_ids"].message_id)
    contacts = events[events.source == "contacts"]
    assert len(contacts) == len(run.tables["raw_contacts"])
    # The Snowplow sample (a registered landing source): five events, one delivered twice.
    snowplow = events[events.source == "snowplow"]
    assert len(snowplow) == 5 and snowplow.profile_id.notna().all()
    assert set(snowplow.event_name) == {"Returns", "help search", "My orders", "Help centre", "newsletter subscribe"}


def test_duplicates_are_dropped_first_received_wins_and_clock_skew_is_corrected(sample_runs: SampleRuns):
    events = sample_runs.first.tables["profile_events"].set_index("message_id")
    account_created = events.loc["course-007"]
    # Delivered twice (stories file, then edge_cases.jsonl with a later receivedAt): the first copy stands.
    assert account_created.file_path == "events/stories/cdp_course_web_and_mobile.jsonl"
    assert account_created.event_at == pd.Timestamp("2015-12-12 19:10:58.831")
    # The same message without messageId, delivered twice: one event with a derived id.
    newsletter = events[events.event_name == "Newsletter Opened"]
    assert len(newsletter) == 1 and newsletter.index[0].startswith("derived-")


def test_messages_whose_only_identifiers_are_junk_stay_unresolved(sample_runs: SampleRuns):
    events = sample_runs.first.tables["profile_events"].set_index("message_id")
    assert events.loc["edge-006"].resolution_status == "no_linkable_identifier"
    assert pd.isna(events.loc["edge-006"].profile_id)
    identifiers = sample_runs.first.tables["profile_identifiers"]
    assert not identifiers.identifier_value.isin(["undefined", "00000000-0000-0000-0000-000000000000", "n/a"]).any()


def test_a_second_run_over_the_same_files_changes_nothing(sample_runs: SampleRuns):
    for name, table in sample_runs.first.tables.items():
        pd.testing.assert_frame_equal(table, sample_runs.second.tables[name], obj=name)


def test_a_late_file_is_picked_up_merges_two_profiles_and_renames_no_one(sample_runs: SampleRuns):
    before, after = sample_runs.second, sample_runs.after_late_file
    new_files = set(after.tables["loaded_files"].file_path) - set(before.tables["loaded_files"].file_path)
    assert new_files == {"events/late/intilery_s2_mobile_login.jsonl"}
    assert {"late-001", "late-002"} <= set(after.tables["profile_events"].message_id)

    web_profile = before.profile_of("user_id", "intilery-user-2")
    mobile_profile = before.profile_of("anonymous_id", "intilery-s2-mobile")
    assert after.profile_of("anonymous_id", "intilery-s2-mobile") == web_profile  # the older profile survives
    assert after.identifiers_of(web_profile) == (
        STORIES["intilery 2: multi-device, single login (web)"] | {("anonymous_id", "intilery-s2-mobile")}
    )
    assert len(after.tables["profiles"]) == len(before.tables["profiles"]) - 1
    merges = after.tables["profile_merges"]
    assert list(zip(merges.merged_profile_id, merges.surviving_profile_id, merges.caused_by_message_id)) == [
        (mobile_profile, web_profile, "late-001")
    ]

    # Scenario 3's profile gains a tablet whose message is older than the profile, and keeps its id.
    multi_login = before.profile_of("user_id", "intilery-user-3")
    assert after.profile_of("anonymous_id", "intilery-s3-old-tablet") == multi_login
    # No other identifier changed profile.
    joined = before.tables["profile_identifiers"].merge(
        after.tables["profile_identifiers"], on=["identifier_type", "identifier_value"], suffixes=("_before", "_after"))
    moved = joined[joined.profile_id_before != joined.profile_id_after]
    assert set(zip(moved.identifier_type, moved.identifier_value)) == {("anonymous_id", "intilery-s2-mobile")}


def test_generated_people_are_never_merged_with_each_other(sample_runs: SampleRuns):
    """Precision against the generator's ground truth: a profile never holds two people."""
    truth = load_truth(sample_runs.landing)
    identifiers = sample_runs.first.tables["profile_identifiers"].merge(truth, on=["identifier_type", "identifier_value"])
    assert len(identifiers) > 0.95 * len(truth)  # nearly every generated identifier is in the graph
    assert identifiers.groupby("profile_id").person_id.nunique().max() == 1


def test_the_sample_audiences_find_the_people_the_stories_describe(sample_runs: SampleRuns):
    run = sample_runs.first
    members = run.tables["audience_members"]
    webinar_only = set(members[members.audience == "webinar_attendees_without_account"].profile_id)
    # Of the five webinar attendees Dana and Ravi signed up; Mia, Olu and Sam never did.
    assert webinar_only == {run.profile_of("email", e) for e in ("mia.chen@example.net", "olu@example.com",
                                                                 "sam.lee@example.org")}
    newsletter = set(members[members.audience == "newsletter_subscribers_without_account"].profile_id)
    assert run.profile_of("email", "mia.chen@example.net") in newsletter
    assert run.profile_of("user_id", "97980cfea0067") not in newsletter  # subscribed, then created an account
    high_value = members[members.audience == "high_value_customers"]
    assert run.profile_of("user_id", "intilery-user-3") not in set(high_value.profile_id)  # one order of 42.50
    assert set(members[members.audience == "loyal_pro_customers"].profile_id) <= set(high_value.profile_id)


def test_each_build_attaches_what_it_did_to_the_assets(sample_runs: SampleRuns):
    first, second = sample_runs.first, sample_runs.second
    profiles = first.tables["profiles"]
    assert first.metadata["marts/profiles"]["profiles"] == len(profiles)
    assert first.metadata["marts/profiles"]["known_profiles"] == int((~profiles.is_anonymous).sum())
    assert "identifiers per profile" in first.metadata["marts/profiles"]["profile_sizes"]
    by_type = first.tables["profile_identifiers"].identifier_type.value_counts()
    assert first.metadata["marts/profile_identifiers"]["identifiers/email"] == by_type["email"]
    assert first.metadata["marts/junk_identifiers"]["junk_identifiers"] > 0  # the generated household devices
    assert first.metadata["marts/profile_merges"]["merges"] == len(first.tables["profile_merges"])
    assert "dagster/column_schema" in first.metadata["marts/profile_events"]
    # the second run, with nothing new and nothing that time changed, materializes no dbt model
    dbt_schemas = ("staging", "intermediate", "marts", "traits", "audiences")
    assert not [asset for asset in second.metadata if asset.split("/")[0] in dbt_schemas], sorted(second.metadata)
    assert any(asset.startswith("raw/") for asset in second.metadata)  # the landing step ran
    with pytest.raises(FileNotFoundError):  # no dbt process at all: no build folder
        build_folder(second.outcome.run_id)
    # column schema and lineage follow from the project: later builds of the same project carry them over
    later = sample_runs.after_late_file
    for asset in ("traits/traits__commerce", "audiences/audience__cart_abandoners", "marts/profile_events",
                  "marts/profiles", "intermediate/int_identifiers"):
        for entry in ("dbt_project_fingerprint", "dagster/column_schema", "dagster/column_lineage"):
            assert later.metadata[asset][entry] == first.metadata[asset][entry], (asset, entry)
    # dbt unit tests test the SQL, not the data: the first build runs them, later builds of the same
    # project and vars leave them out
    for asset in ("marts/profile_events", "intermediate/int_identifiers", "audiences/audience__cart_abandoners"):
        assert first.metadata[asset]["dbt_unit_tests"] == "run in this build"
        assert later.metadata[asset]["dbt_unit_tests"] == "not run: passed in an earlier build of this version"
        assert later.metadata[asset]["dbt_unit_tests_passed_for"] == first.metadata[asset]["dbt_unit_tests_passed_for"]
    # dbt parses the project partially in later builds of the same warehouse: the job carries each
    # build's partial-parse file back (dagster-dbt does not, and dbt parses anew for another profile)
    assert "PartialParsingEnabled" in later.dbt_log_events and "UnableToPartialParse" not in later.dbt_log_events
    # audiences: everyone enters at the first build (nobody enters or leaves when only time moves:
    # test_build_selection.py)
    members = first.tables["audience_members"]
    cart = first.metadata["audiences/audience__cart_abandoners"]
    assert cart == {**cart, "members": int((members.audience == "cart_abandoners").sum()), "exited": 0}
    assert cart["entered"] == cart["members"]
    # ingestion: lines by outcome
    landed = first.metadata["raw/rejected_records"]
    assert landed["lines_rejected"] == len(first.tables["rejected_records"])
    assert "rejected: malformed_json" in landed["lines_by_outcome"]
