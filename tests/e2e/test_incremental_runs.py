"""Incremental runs give what a full refresh gives.

The sample data lands in three pieces, three runs of the real job (the last piece brings a message
that merges two existing profiles, one older than the profile it joins, an earlier-received copy
of a message staged two runs before, the first message of a user id that an alias of the run before
named as its previousId, a device signed in by a second user, which turns junk, and a newer export
of the CRM list without its last record).
Then:

- a `--full-refresh` build of the same warehouse must reproduce every table row by row: what the
  incremental models kept is exactly what rebuilding them from the raw tables gives;
- a warehouse built at once on the same files must hold the same rows too, once profile ids are
  compared by the people they name (ids carry history by design: a profile keeps the id it was
  given when a later message turns up an older identifier, see int_profile_ids), except for the
  tables that record history (merges, audience changes), which a single run cannot have.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from orchestration.location.runner import run_build_warehouse
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME, environment
from tests.e2e.conftest import dbt_log_messages

PIECES = [
    ["contacts", "events/stories"],
    ["events/generated-7/part-000.jsonl.gz", "events/generated-7/part-001.jsonl.gz", "events/edge_cases.jsonl",
     "events/accounts"],
    ["events/generated-7/part-002.jsonl.gz", "events/generated-7/part-003.jsonl.gz", "events/late"],
]
LATE_MESSAGES = [
    # Merges Intilery scenario 2's mobile profile into the user's profile.
    {"type": "identify", "messageId": "late-001", "anonymousId": "intilery-s2-mobile", "userId": "intilery-user-2",
     "timestamp": "2024-05-10T08:00:00Z", "receivedAt": "2024-05-10T08:00:01Z"},
    # Older than anything of scenario 3's user: at once, the profile would be named after this device.
    {"type": "identify", "messageId": "late-002", "anonymousId": "intilery-s3-old-tablet", "userId": "intilery-user-3",
     "timestamp": "2024-04-01T08:00:00Z", "receivedAt": "2024-05-11T08:00:00Z"},
    # The old account of ACCOUNT_CHANGE's alias, backfilled: the alias's previousId is a user id now.
    {"type": "identify", "messageId": "late-003", "userId": "acct-old-7", "traits": {"email": "old7@example.com"},
     "timestamp": "2023-11-02T08:00:00Z", "receivedAt": "2024-05-12T08:00:00Z"},
    # SHARED_AND_CHAINED's device seen with a second user: a second user id in one component, which
    # merge protection splits again (the weakest link, to the new user, is not made).
    {"type": "identify", "messageId": "late-004", "anonymousId": "chain-device-8", "userId": "chain-user-9",
     "timestamp": "2024-03-05T08:00:00Z", "receivedAt": "2024-03-05T08:00:01Z"},
    # SHARED_AND_CHAINED's tablet signed in by a second user in one message: it turns junk, and
    # leaves its first user's profile.
    {"type": "identify", "messageId": "late-005", "anonymousId": "shared-tablet-10", "userId": "shared-user-11",
     "timestamp": "2024-03-06T08:00:00Z", "receivedAt": "2024-03-06T08:00:01Z"},
]
# A user who moved to a new account (piece 2): until its messages arrive, the old account id is
# only a previousId, so it is typed as an anonymous id.
ACCOUNT_CHANGE = [
    {"type": "identify", "messageId": "acct-001", "userId": "acct-new-7", "anonymousId": "acct-device-7",
     "timestamp": "2024-03-01T08:00:00Z", "receivedAt": "2024-03-01T08:00:01Z"},
    {"type": "alias", "messageId": "acct-002", "previousId": "acct-old-7", "userId": "acct-new-7",
     "timestamp": "2024-03-01T08:01:00Z", "receivedAt": "2024-03-01T08:01:01Z"},
]
# Piece 2: a user linked to a device through an e-mail address, and a tablet a user signed in on.
SHARED_AND_CHAINED = [
    {"type": "identify", "messageId": "chain-001", "userId": "chain-user-8", "traits": {"email": "chain8@example.com"},
     "timestamp": "2024-03-02T08:00:00Z", "receivedAt": "2024-03-02T08:00:01Z"},
    {"type": "identify", "messageId": "chain-002", "anonymousId": "chain-device-8", "traits": {"email": "chain8@example.com"},
     "timestamp": "2024-03-03T08:00:00Z", "receivedAt": "2024-03-03T08:00:01Z"},
    {"type": "identify", "messageId": "shared-001", "anonymousId": "shared-tablet-10", "userId": "shared-user-10",
     "timestamp": "2024-03-02T09:00:00Z", "receivedAt": "2024-03-02T09:00:01Z"},
]
# Columns that say when a build or a load happened, or what the previous build said, not what the data is
# (int_profile_changes' fingerprint hashes profile_events.updated_at).
RUN_TIME_COLUMNS = {"loaded_at", "assigned_at", "built_at", "components_built_at", "changed_at", "updated_at",
                    "merged_at", "exported_at", "previous_profile_id", "fingerprint", "as_of", "copies_loaded_until",
                    "applied_at", "staged_at"}  # meta.schema_version
# Tables that record what happened build after build: a single build cannot have their rows.
HISTORY_TABLES = {"marts.profile_merges", "marts.audience_membership_history", "exports.audience_exports"}


def _earlier_copy_of_a_staged_message(landing: Path) -> dict:
    """A copy of a story message (landed in piece 1) that says it was received earlier: it must
    replace the staged copy in the run that brings it."""
    first_line = (landing / "events" / "stories" / "intilery_scenarios.jsonl").read_text().splitlines()[0]
    message = json.loads(first_line)
    message["receivedAt"] = "2000-01-01T00:00:00Z"
    message.setdefault("context", {})["redelivered"] = True
    return message


CRM_LIST = "contacts/crm_export.csv"


def _newer_export_without_its_last_record(path: Path) -> None:
    """The same list exported again, one record fewer: that record must leave every table."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


def _tables(database: Path) -> dict[str, pd.DataFrame]:
    """Every table and view the models build, as text, columns sorted, rows sorted."""
    with duckdb.connect(str(database), read_only=True) as conn:
        names = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            # build_state: what each build was made from (orchestration/location/build_state.py)
            "where table_schema not in ('raw', 'main', 'build_state') order by 1"
        ).fetchall()
        tables = {}
        for (name,) in names:
            frame = conn.execute(f"select * from {name}").df()
            frame = frame[sorted(c for c in frame.columns if c not in RUN_TIME_COLUMNS)]
            # sums of doubles differ in the last digit with the order DuckDB's threads add them up
            frame = frame.apply(lambda column: column.round(9) if column.dtype.kind == "f" else column).astype(str)
            tables[name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return tables


def _rows_per_build(database: Path) -> dict[str, list[int]]:
    """For the graph tables and the identity map, which keep what a build did not recompute: how many
    rows each build wrote that are still there, oldest build first."""
    with duckdb.connect(str(database), read_only=True) as conn:
        return {table: [count for _, count in conn.execute(
                    f"select {column}, count(*) from {table} group by 1 order by 1").fetchall()]
                for table, column in [("intermediate.int_identity_nodes", "built_at"),
                                      ("intermediate.int_identity_edges", "built_at"),
                                      ("intermediate.int_identity_components", "built_at"),
                                      ("intermediate.int_profile_ids", "assigned_at"),
                                      ("marts.profile_identifiers", "updated_at")]}


def _people_named(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """profile id → the smallest identifier of the profile: a name for the person that does not
    depend on history."""
    identifiers = tables["marts.profile_identifiers"]
    keys = identifiers.identifier_type + ":" + identifiers.identifier_value
    return keys.groupby(identifiers.profile_id).min().to_dict()


def _by_person(frame: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    frame = frame.copy()
    # derived_profile_id is a function of the data alone (the hash of the component's oldest identifier)
    for column in [c for c in frame.columns if c.endswith("profile_id") and c != "derived_profile_id"]:
        frame[column] = frame[column].map(lambda value: names.get(value, value))
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="session")
def incremental_and_full(tmp_path_factory, dagster_instance):
    source = tmp_path_factory.mktemp("incremental-source")
    shutil.copytree(SEEDS, source, dirs_exist_ok=True)
    (source / "events" / "accounts").mkdir()
    (source / "events" / "accounts" / "account_change.jsonl").write_text(
        "".join(json.dumps(m) + "\n" for m in [*ACCOUNT_CHANGE, *SHARED_AND_CHAINED]))
    late = source / "events" / "late"
    late.mkdir()
    (late / "late_logins.jsonl").write_text(
        "".join(json.dumps(m) + "\n" for m in [*LATE_MESSAGES, _earlier_copy_of_a_staged_message(source)])
    )

    landing = tmp_path_factory.mktemp("incremental-landing")
    database = tmp_path_factory.mktemp("incremental-db") / WAREHOUSE_FILE_NAME
    outcomes = []
    with environment(LANDING_DIR=landing, DUCKDB_PATH=database):
        for number, piece in enumerate(PIECES):
            for relative in piece:
                (landing / relative).parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if (source / relative).is_dir() else shutil.copy)(source / relative, landing / relative)
            if number == len(PIECES) - 1:
                _newer_export_without_its_last_record(landing / CRM_LIST)
            outcomes.append(run_build_warehouse(dagster_instance))
        incremental = _tables(database)
        rows_per_build = _rows_per_build(database)
        outcomes.append(run_build_warehouse(
            dagster_instance, run_config={"ops": {"identity_warehouse_dbt_models": {"config": {"full_refresh": True}}}}
        ))
        refreshed = _tables(database)

    at_once_database = tmp_path_factory.mktemp("at-once-db") / WAREHOUSE_FILE_NAME
    with environment(LANDING_DIR=landing, DUCKDB_PATH=at_once_database):
        outcomes.append(run_build_warehouse(dagster_instance))
    return {"outcomes": outcomes, "incremental": incremental, "refreshed": refreshed, "rows_per_build": rows_per_build,
            "at_once": _tables(at_once_database)}


def test_every_run_succeeds(incremental_and_full):
    assert [outcome.ok for outcome in incremental_and_full["outcomes"]] == [True] * 5


def test_a_full_refresh_reproduces_every_table_row_by_row(incremental_and_full):
    incremental, refreshed = incremental_and_full["incremental"], incremental_and_full["refreshed"]
    assert sorted(refreshed) == sorted(incremental)
    assert {"marts.profiles", "marts.profile_events", "staging.stg_segment__tracks"} <= set(incremental)
    for name in sorted(set(incremental) - {"exports.audience_exports"}):  # a log of export runs
        pd.testing.assert_frame_equal(refreshed[name], incremental[name], obj=name)


def test_building_at_once_finds_the_same_people_with_the_same_rows(incremental_and_full):
    incremental, at_once = incremental_and_full["incremental"], incremental_and_full["at_once"]
    assert sorted(at_once) == sorted(incremental)
    incremental_names, at_once_names = _people_named(incremental), _people_named(at_once)
    for name in sorted(set(incremental) - HISTORY_TABLES):
        frame = incremental[name]
        if not any(column.endswith("profile_id") for column in frame.columns):
            pd.testing.assert_frame_equal(at_once[name], frame, obj=name)
            continue
        pd.testing.assert_frame_equal(_by_person(at_once[name], at_once_names),
                                      _by_person(frame, incremental_names), obj=name)


def test_the_record_a_newer_export_dropped_left_the_messages(incremental_and_full):
    records = SEEDS.joinpath(CRM_LIST).read_text().splitlines()
    dropped = f"contact:crm_export:{len(records) - 1}"
    for name in ("intermediate.int_messages", "marts.profile_events"):
        message_ids = set(incremental_and_full["incremental"][name].message_id)
        assert dropped not in message_ids, name
        assert f"contact:crm_export:{len(records) - 2}" in message_ids, name


def test_the_late_login_merged_two_profiles_and_the_earlier_copy_won(incremental_and_full):
    incremental = incremental_and_full["incremental"]
    assert "late-001" in set(incremental["marts.profile_merges"].caused_by_message_id)
    identifiers = incremental["marts.profile_identifiers"]
    profile_of = dict(zip(identifiers.identifier_type + ":" + identifiers.identifier_value, identifiers.profile_id))
    assert profile_of["anonymous_id:intilery-s2-mobile"] == profile_of["user_id:intilery-user-2"]
    pages = incremental["staging.stg_segment__pages"].set_index("message_id")
    assert '"redelivered":true' in pages.loc["intilery-101", "context"]


def test_an_alias_previous_id_becomes_a_user_id_when_its_first_message_arrives(incremental_and_full):
    identifiers = incremental_and_full["incremental"]["intermediate.int_identifiers"]
    previous_id = identifiers[(identifiers.message_id == "acct-002") & (identifiers.observed_in == "previousId")]
    assert list(previous_id.identifier_type) == ["user_id"]
    # As an anonymous id it was in the new account's profile; as a user id it is a profile of its
    # own (one user id per profile), with the e-mail of its backfilled message.
    profiles = incremental_and_full["incremental"]["marts.profile_identifiers"].set_index("identifier_value").profile_id
    assert profiles["acct-old-7"] == profiles["old7@example.com"] != profiles["acct-new-7"]


def test_a_late_link_is_split_again_and_a_device_turned_junk_leaves_its_profile(incremental_and_full):
    incremental = incremental_and_full["incremental"]
    identifiers = incremental["marts.profile_identifiers"]
    profile_of = dict(zip(identifiers.identifier_type + ":" + identifiers.identifier_value, identifiers.profile_id))
    assert profile_of["anonymous_id:chain-device-8"] == profile_of["user_id:chain-user-8"]
    assert profile_of["user_id:chain-user-9"] != profile_of["user_id:chain-user-8"]
    junk = incremental["marts.junk_identifiers"]
    assert "shared-tablet-10" in set(junk.identifier_value)
    assert profile_of["anonymous_id:shared-tablet-10"] != profile_of["user_id:shared-user-10"]
    # the message of the run before that linked it lost its edge when it turned junk
    edges = incremental["intermediate.int_identity_edges"]
    assert "shared-tablet-10" not in set(edges.from_value) | set(edges.to_value)


def test_later_runs_recompute_only_the_components_that_changed(incremental_and_full):
    recomputed = dbt_log_messages(incremental_and_full["outcomes"][len(PIECES) - 1].run_id,
                                  "int_identity_components: recomputing")
    assert len(recomputed) == 1, recomputed
    changed, total = map(int, re.findall(r"\d+", recomputed[0]))
    assert 0 < changed < total
    # and wrote only their rows (and the edges of the messages linked again): the others keep the rows
    # of earlier builds
    for table, rows in incremental_and_full["rows_per_build"].items():
        assert len(rows) > 1 and 0 < rows[-1] < sum(rows), (table, rows)


@pytest.mark.parametrize("model", ["int_identity_conflicts", "int_identity_nodes"])
def test_identifiers_are_summarised_again_only_where_their_rows_changed(incremental_and_full, model):
    """Junk detection's counts and the graph's nodes: each later run summarises only the identifiers
    of the rows int_identifiers wrote or replaced since the last build: the second only new
    messages, the last also the rows it replaced (the earlier copy, the alias whose previousId
    turned user id, the record gone). The device the last run made junk is junk all the same, and
    the full refresh and the build at once agree (above)."""
    counts = [dbt_log_messages(outcome.run_id, f"{model}: counting")
              for outcome in incremental_and_full["outcomes"][:len(PIECES)]]
    assert counts[0] == [], counts  # a first build: not incremental
    replaced = []
    for messages in counts[1:]:
        assert len(messages) == 1, counts
        found = re.fullmatch(rf"{model}: counting the identifiers of ([1-9]\d*) rows written and "
                             r"(\d+) replaced since the last count", messages[0])
        assert found, counts
        replaced.append(int(found.group(2)))
    assert replaced[-1] > 0, counts
    assert "shared-tablet-10" in set(incremental_and_full["incremental"]["intermediate.int_identity_conflicts"].identifier_value)
