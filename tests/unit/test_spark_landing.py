"""Spark's landing tasks, without Spark: each task lands its file with the DuckDB ingestion's own
code, so the rows it hands Spark are the rows the DuckDB target lands, rejections and the privacy
screen included (orchestration/spark/landing.py; the Spark side is in tests/e2e/test_spark_landing.py)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.core import settings
from orchestration.core.migrations import upgrade
from orchestration.landing.ingestion import IdentityFields, create_raw_tables, ingest_landing_dir
from orchestration.landing.sources import registered_sources
from orchestration.privacy.requests import ERASED_REASON, create_privacy_tables, identifier_hash, privacy_salt
from orchestration.privacy.screen import PrivacyScreen
from orchestration.spark.build import privacy_screen_rows
from orchestration.identity.rules import IdentityRules
from orchestration.spark.landing import (
    SCANNED_COLUMNS,
    ErasureScan,
    LandingPlan,
    erased_lines,
    land_file,
    parquet_select,
    plan_tasks,
    raw_table_columns,
    scanned_as,
)
from tests.conftest import SEEDS

RULES = settings.identity_rules()
SALT = "unit-salt"
# An anonymous id of the sample's stories, erased: its lines are rejected at the door.
ERASED = ("anonymous_id", "intilery-s1-web")
WALL_CLOCK = {"loaded_at", "rejected_at"}


def _plan(landing: Path, staging: Path, screened=(), already=frozenset()) -> LandingPlan:
    return LandingPlan(landing.resolve(), staging, IdentityFields.from_rules(RULES), tuple(registered_sources()), RULES,
                       tuple(screened), SALT if screened else None, already, 1_000)


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    """The sample, and a link to a file outside the landing folder."""
    root = tmp_path_factory.mktemp("spark-landing")
    folder = root / "landing"
    shutil.copytree(SEEDS, folder)
    (root / "secret.jsonl").write_text('{"type": "track", "messageId": "x", "userId": "u"}\n')
    (folder / "events" / "link-out.jsonl").symlink_to(root / "secret.jsonl")
    # A line that is not JSON, with an e-mail of the sample's CRM export in it.
    (folder / "events" / "broken.jsonl").write_text('{"type": "track", "userId": "Ada.Costa3@Example.Com"\n')
    return folder


def _screened() -> list[tuple[str, str, str]]:
    identifier_type, value = ERASED
    return [(identifier_type, identifier_hash(SALT, identifier_type, value), ERASED_REASON)]


def test_the_tasks_land_every_file_as_the_duckdb_ingestion_does(landing, tmp_path):
    with duckdb.connect(str(tmp_path / "duck.duckdb")) as conn:
        create_privacy_tables(conn)
        conn.executemany("insert into privacy.tombstones values (?, ?, 'req', now())", [row[:2] for row in _screened()])
        screen = PrivacyScreen.load(conn, SALT, RULES)
        ingest_landing_dir(conn, landing, IdentityFields.from_rules(RULES), registered_sources(), screen)

    staging = tmp_path / "staging"
    plan = _plan(landing, staging, _screened())
    outcomes = [land_file(plan, task) for task in plan_tasks(landing, registered_sources())]
    assert outcomes and not any(outcome["skipped"] for outcome in outcomes)

    with duckdb.connect() as conn:
        conn.execute(f"attach '{tmp_path / 'duck.duckdb'}' as duck (read_only)")
        conn.execute("use duck")
        tables = raw_table_columns(conn)
        assert {"tracks", "contacts", "rejected_records", "loaded_files"} <= set(tables)
        for table, columns in tables.items():
            compared = [(c, t) for c, t in columns if c not in WALL_CLOCK]
            duck = f"select {parquet_select(compared)} from raw.\"{table}\""
            names = ", ".join(f'"{c}"' for c, _ in compared)
            staged = (f"select {names} from read_parquet('{staging / table}/*.parquet')" if (staging / table).is_dir()
                      else f"select {names} from ({duck}) where false")
            for left, right in ((duck, staged), (staged, duck)):
                assert conn.execute(f"select count(*) from ({left} except all {right})").fetchone()[0] == 0, table
        reasons = dict(conn.execute("select reason, count(*) from raw.rejected_records group by 1").fetchall())
    # The sample's rejections, the screen and the link out of the folder are all there (so compared).
    assert reasons[ERASED_REASON] > 0 and reasons["outside_landing_dir"] == 1 and reasons["malformed_json"] > 0


def test_a_file_landed_before_is_skipped_and_nothing_staged(landing, tmp_path):
    staging = tmp_path / "staging"
    tasks = plan_tasks(landing, registered_sources())
    first = land_file(_plan(landing, staging), tasks[0])
    with duckdb.connect() as conn:
        [(path, sha)] = conn.execute(
            f"select file_path, content_sha256 from read_parquet('{staging / 'loaded_files'}/*.parquet')").fetchall()
    assert path == tasks[0].landing_file.relative_path == first["relative_path"]
    shutil.rmtree(staging)
    assert land_file(_plan(landing, staging, already=frozenset({(path, sha)})), tasks[0]) == {"number": 0, "skipped": True}
    assert not staging.exists()


def test_files_land_in_parallel_but_keep_the_order_of_loading_one_by_one(landing):
    now = datetime(2026, 12, 7, 12, 0)
    tasks = plan_tasks(landing, registered_sources(), now)
    assert [t.number for t in tasks] == list(range(len(tasks)))
    assert tasks[0].loaded_at == now and all(a.loaded_at < b.loaded_at for a, b in zip(tasks, tasks[1:]))


def test_the_screen_is_read_from_the_duckdb_file_with_its_salt(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    assert privacy_screen_rows(database) == ([], None)
    with duckdb.connect(str(database)) as conn:
        upgrade(conn)
        create_raw_tables(conn)
    assert privacy_screen_rows(database) == ([], None)  # no requests: no screen, no salt made
    salt = privacy_salt(database)
    with duckdb.connect(str(database)) as conn:
        create_privacy_tables(conn)
        conn.execute("insert into privacy.locks values ('email', ?, 'req', now())",
                     [identifier_hash(salt, "email", "sam@example.org")])
    rows, found_salt = privacy_screen_rows(database)
    assert rows == [("email", identifier_hash(salt, "email", "sam@example.org"), "locked_identity")]
    assert found_salt == salt


def test_landed_lines_of_an_erased_identifier_are_found_as_the_screen_finds_them_at_the_door(landing, tmp_path):
    """erase_landed's tasks (erased_lines) find, among rows landed before an erasure, the lines the
    landing screen would have rejected, and a rejected line whose text holds the identifier."""
    tombstones = [(t, identifier_hash(SALT, t, v), ERASED_REASON) for t, v in (ERASED, ("email", "ada.costa3@example.com"))]
    with duckdb.connect(str(tmp_path / "door.duckdb")) as conn:
        create_privacy_tables(conn)
        conn.executemany("insert into privacy.tombstones values (?, ?, 'req', now())", [row[:2] for row in tombstones])
        ingest_landing_dir(conn, landing, IdentityFields.from_rules(RULES), registered_sources(),
                           PrivacyScreen.load(conn, SALT, RULES))
        at_the_door = set(conn.execute(
            "select load_id, line_number from raw.rejected_records where reason = 'erased_identity'").fetchall())
        broken = conn.execute("select load_id from raw.loaded_files where file_path = 'events/broken.jsonl'").fetchone()[0]

    staging = tmp_path / "staging"
    plan = _plan(landing, staging)
    for task in plan_tasks(landing, registered_sources()):
        land_file(plan, task)
    scan, screen = ErasureScan(RULES, tuple(tombstones), SALT), PrivacyScreen(SALT, IdentityRules.parse(RULES))
    found: dict[str, set] = {}
    with duckdb.connect() as conn:
        for folder in sorted(staging.iterdir()):
            scanned = scanned_as(folder.name, screen, registered_sources())
            if scanned is None:
                continue
            kind, fields, text = scanned
            columns = ", ".join(SCANNED_COLUMNS[kind] if text is None else ("load_id", "line_number", text))
            rows = iter(conn.execute(f"select {columns} from read_parquet('{folder}/*.parquet')").fetchall())
            found[folder.name] = set(erased_lines(scan, kind, fields, rows))
    rejected = found.pop("rejected_records")
    assert set().union(*found.values()) == at_the_door
    assert found["contacts"] and found["tracks"]  # both identifiers, both kinds of table
    assert rejected == {(broken, 1)}


def test_a_partitions_rows_are_matched_after_normalising_as_the_screen_does():
    """Rows as Spark hands a partition (tuples, empty columns as None): an e-mail in another case,
    with spaces, is the erased one; a row without text is passed over."""
    scan = ErasureScan(RULES, ((("email", identifier_hash(SALT, "email", "ada.costa3@example.com"), ERASED_REASON)),), SALT)
    rows = iter([("l1", 2, " Ada.Costa3@Example.Com", None, None), ("l1", 3, "sam@example.org", None, None)])
    assert erased_lines(scan, "contacts", None, rows) == [("l1", 2)]
    lines = iter([("l2", 1, None), ("l2", 2, '{"type": "identify", "traits": {"email": "ADA.COSTA3@example.com"}}')])
    screen = PrivacyScreen(SALT, IdentityRules.parse(RULES))
    assert erased_lines(scan, "lines", screen.event_fields(), lines) == [("l2", 2)]
