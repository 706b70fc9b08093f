"""Landing files in Spark (orchestration/spark/landing.py) with a real local Spark: files land once,
a second landing skips them, and a landing that dies before recording its files loses nothing and
duplicates nothing: the next one removes the unrecorded rows and lands those files again. Rows
landed before an identifier was erased are removed from the raw tables at the next landing.

The rows themselves are the DuckDB ingestion's (tests/unit/test_spark_landing.py); the whole build
on them is compared with DuckDB's in test_spark_equivalence.py. Needs Java and the `spark` extra,
as that test does."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from orchestration.core import settings
from orchestration.landing.ingestion import IdentityFields
from orchestration.landing.sources import registered_sources
from orchestration.privacy.requests import ERASED_REASON, identifier_hash
from orchestration.spark import landing as spark_landing
from tests.conftest import SEEDS
from tests.e2e.conftest import LATE_MESSAGES
from tests.e2e.test_spark_equivalence import _require_spark

RULES = settings.identity_rules()
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    _require_spark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (SparkSession.builder.master("local[2]").appName("spark-landing-test")
               .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
               .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2").config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _land(spark, landing: Path, root: Path, screened=(), salt=None, erased: dict | None = None):
    summary, erased_rows = spark_landing.land(spark, landing, root / "staging", root, IdentityFields.from_rules(RULES),
                                              registered_sources(), RULES, list(screened), salt)
    if erased is not None:
        erased.update(erased_rows)
    return summary


def _landing(root: Path) -> Path:
    """Three files of the sample: a story, the edge cases (rejections), a contact list. The whole
    sample lands in Spark in test_spark_equivalence.py; here each landing costs Spark's jobs per table."""
    landing = root / "landing"
    for name in ("events/stories/intilery_scenarios.jsonl", "events/edge_cases.jsonl", "contacts/crm_export.csv"):
        (landing / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SEEDS / name, landing / name)
    return landing


def _counts(spark) -> dict[str, int]:
    return {row.tableName: spark.table(f"raw.{row.tableName}").count()
            for row in spark.sql("show tables in raw").collect() if not row.isTemporary}


def test_files_land_once_and_a_landing_that_died_is_redone_without_duplicates(spark, tmp_path, monkeypatch):
    landing = _landing(tmp_path)
    first = _land(spark, landing, tmp_path)
    counts = _counts(spark)
    assert len(first.files_loaded) == counts["loaded_files"] == 3 and first.files_skipped == 0
    assert counts["tracks"] == first.accepted["tracks"] > 0
    assert counts["rejected_records"] == sum(first.rejected.values()) > 0

    again = _land(spark, landing, tmp_path)
    assert again.files_loaded == [] and again.files_skipped == len(first.files_loaded)
    assert _counts(spark) == counts

    # A late file; the landing dies after appending its events, before recording the file.
    late = landing / "events" / "late" / "login.jsonl"
    late.parent.mkdir()
    late.write_text("".join(json.dumps(m) + "\n" for m in LATE_MESSAGES))
    real_append = spark_landing.append

    def dies_at_the_record(session, folder, table, columns):
        if table == spark_landing.LOADED_FILES:
            raise RuntimeError("killed")
        real_append(session, folder, table, columns)

    monkeypatch.setattr(spark_landing, "append", dies_at_the_record)
    with pytest.raises(RuntimeError, match="killed"):
        _land(spark, landing, tmp_path)
    died = _counts(spark)
    assert died["loaded_files"] == counts["loaded_files"] and died["identifies"] == counts["identifies"] + 2
    assert (tmp_path / "landing-pending.json").exists()

    monkeypatch.setattr(spark_landing, "append", real_append)
    redone = _land(spark, landing, tmp_path)
    assert [f.relative_path for f in redone.files_loaded] == ["events/late/login.jsonl"]
    after = _counts(spark)
    assert after["loaded_files"] == counts["loaded_files"] + 1
    late_rows = sum(redone.accepted.values())
    assert sum(after[t] for t in redone.accepted) == sum(counts[t] for t in redone.accepted) + late_rows
    assert not (tmp_path / "landing-pending.json").exists()
    # Every landed line once: no (load, line) twice in any table.
    for table in after:
        if table != spark_landing.LOADED_FILES:
            assert spark.sql(f"select load_id, line_number from raw.{table} group by 1, 2 having count(*) > 1").count() == 0


def test_rows_landed_before_an_erasure_are_removed_at_the_next_landing(spark, tmp_path):
    spark.sql("drop database if exists raw cascade")
    landing = _landing(tmp_path)
    _land(spark, landing, tmp_path)
    before = _counts(spark)

    def carrying(table: str, condition: str) -> int:
        return spark.sql(f"select count(*) from raw.{table} where {condition}").first()[0]

    anonymous = "get_json_object(payload, '$.anonymousId') = 'intilery-s1-web'"
    email = "lower(trim(email)) = 'ada.costa3@example.com'"
    assert carrying("tracks", anonymous) > 0 and carrying("contacts", email) > 0
    salt = "e2e-salt"
    screened = [(t, identifier_hash(salt, t, v), ERASED_REASON)
                for t, v in (("anonymous_id", "intilery-s1-web"), ("email", "ada.costa3@example.com"))]
    # A lock is not an erasure: what landed before it stays.
    screened.append(("user_id", identifier_hash(salt, "user_id", "intilery-user-2"), "locked_identity"))
    erased: dict = {}
    _land(spark, landing, tmp_path, screened, salt, erased)
    after = _counts(spark)
    assert erased["tracks"] > 0 and erased["contacts"] > 0
    assert {t: before[t] - after[t] for t in before if before[t] != after[t]} == erased
    assert carrying("tracks", anonymous) == 0 and carrying("contacts", email) == 0
    assert carrying("identifies", "get_json_object(payload, '$.userId') = 'intilery-user-2'") > 0

    # Done once: the same erasures scan nothing again; the rewritten tables take new files (their
    # columns in their order: the landing appends by position).
    late = landing / "events" / "late.jsonl"
    late.write_text("".join(json.dumps(m) + "\n" for m in LATE_MESSAGES))
    again: dict = {}
    summary = _land(spark, landing, tmp_path, screened, salt, again)
    assert again == {} and [f.relative_path for f in summary.files_loaded] == ["events/late.jsonl"]
    # (its login of the locked user is rejected at the door)
    assert summary.rejected == {"locked_identity": 1} and _counts(spark)["identifies"] == after["identifies"] + 1
    assert erased["identifies"] > 0  # rewritten, then appended to
    assert [tuple(r) for r in spark.sql("select message_id, file_path, line_number from raw.identifies "
                                        "where message_id like 'late-%'").collect()] == [("late-002", "events/late.jsonl", 2)]


def test_a_rewrite_cut_short_is_finished_by_the_next_landing(spark, tmp_path):
    """A raw table is rewritten beside itself, then swapped in. The next landing finds what a run
    that died left: a whole copy without its table takes its place (before the landing makes the
    tables it misses, which would pass an empty table for it); a copy beside its table goes."""
    spark.sql("drop database if exists raw cascade")
    landing = _landing(tmp_path)
    _land(spark, landing, tmp_path)
    before = _counts(spark)
    spark.sql("create table raw.tracks__kept using parquet as select * from raw.tracks")
    spark.sql("drop table raw.tracks")  # died before the rename
    spark.sql("create table raw.contacts__kept using parquet as select * from raw.contacts where false")  # died writing
    again = _land(spark, landing, tmp_path)
    assert again.files_loaded == [] and before["tracks"] > 0 and before["contacts"] > 0
    assert _counts(spark) == before  # no __kept table left, every row in place


def test_lines_a_privacy_request_left_to_spark_are_removed_and_stay_listed(spark, tmp_path):
    """The Spark job's erasure (orchestration/spark/job.py): the control database lists the line keys
    of the people erased (erasure-pending.json); Spark removes exactly those rows from its raw tables,
    at the erase step and again at any landing until every model has been built without them (the
    list stays: removing it is the rebuild's)."""
    spark.sql("drop database if exists raw cascade")
    landing = _landing(tmp_path)
    _land(spark, landing, tmp_path)
    before = {table: {tuple(row) for row in spark.sql(f"select load_id, line_number from raw.{table}").collect()}
              for table in ("tracks", "contacts", "rejected_records")}
    chosen = {table: sorted(lines)[:2] for table, lines in before.items()}
    pending = tmp_path / spark_landing.PENDING_ERASURE_FILE
    pending.write_text(json.dumps({**{t: [list(k) for k in keys] for t, keys in chosen.items()},
                                   "groups": [["no-such-load", 1]]}))
    assert spark_landing.remove_pending_lines(spark, pending) == {"tracks": 2, "contacts": 2, "rejected_records": 2}
    for table, lines in before.items():
        assert {tuple(row) for row in spark.sql(f"select load_id, line_number from raw.{table}").collect()} == \
            lines - set(chosen[table])
    erased: dict = {}
    _land(spark, landing, tmp_path, erased=erased)  # again: nothing left to remove, nothing landed twice
    assert erased == {} and pending.exists()
    assert {t: spark.table(f"raw.{t}").count() for t in before} == {t: len(lines) - 2 for t, lines in before.items()}
