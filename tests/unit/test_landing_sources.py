"""Registered landing sources: the registry is checked, and their files land line by line."""

import json

import duckdb
import pytest

from orchestration.landing.ingestion import discover_landing_files, ingest_landing_dir
from orchestration.landing.sources import LandingSource, parse_landing_sources, registered_sources

SNOWPLOW = LandingSource("snowplow", "snowplow", "jsonl", "event_id")
GYM = LandingSource("gym", "gym", "csv")


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "sources_test.duckdb"))
    yield connection
    connection.close()


def test_the_registry_is_read_and_checked():
    assert parse_landing_sources({"snowplow": {"folder": "snowplow", "format": "jsonl", "message_id": "event_id"},
                                  "gym": {"format": "csv"}}) == [SNOWPLOW, GYM]
    with pytest.raises(ValueError, match="'tracks'.*snake_case"):
        parse_landing_sources({"tracks": {}})
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        parse_landing_sources({"crm": {"format": "xml"}})
    with pytest.raises(ValueError, match="folder 'events' belongs to the built-in"):
        parse_landing_sources({"crm": {"folder": "events"}})
    # the shipped project registers the Snowplow sample, with where its records carry identifiers
    (snowplow,) = [s for s in registered_sources() if s.name == "snowplow"]
    assert (snowplow.folder, snowplow.format, snowplow.message_id) == ("snowplow", "jsonl", "event_id")
    assert ("user_id", "$.user_id") in snowplow.identifier_paths()


def test_jsonl_lines_land_with_their_ids_or_a_reason(tmp_path, conn):
    folder = tmp_path / "snowplow" / "2024"
    folder.mkdir(parents=True)
    (folder / "part.jsonl").write_text("\n".join([
        json.dumps({"event_id": "e1", "user_id": "u1"}),
        json.dumps({"user_id": "u2"}),
        "",
        "{not json",
        "[1, 2]",
        json.dumps({"event_id": "e1", "user_id": "u1"}),
    ]) + "\n")
    (tmp_path / "snowplow" / "notes.md").write_text("not a landing file")
    files = discover_landing_files(tmp_path, [SNOWPLOW])
    assert [(f.relative_path, f.kind) for f in files] == [("snowplow/2024/part.jsonl", "source:snowplow")]
    summary = ingest_landing_dir(conn, tmp_path, sources=[SNOWPLOW])
    assert summary.accepted == {"snowplow": 3} and summary.rejected == {"malformed_json": 1, "not_a_json_object": 1}
    rows = conn.execute("select message_id, message_id_is_derived, line_number from raw.snowplow order by line_number").fetchall()
    assert rows[0] == ("e1", False, 1) and rows[2] == ("e1", False, 6)
    assert rows[1][0].startswith("snowplow:") and rows[1][1] is True  # derived from the content
    assert conn.execute("select blank_lines, lines_total from raw.loaded_files").fetchone() == (1, 5)
    assert ingest_landing_dir(conn, tmp_path, sources=[SNOWPLOW]).files_skipped == 1  # idempotent


def test_csv_rows_land_as_json_objects_keyed_by_the_header(tmp_path, conn):
    (tmp_path / "gym").mkdir()
    (tmp_path / "gym" / "checkins.csv").write_text(
        'Member Email,Mobile,club\nDana@Example.com,,Downtown\none,two,three,four\nzoe@example.org,415 555 0199,Harbour\n')
    summary = ingest_landing_dir(conn, tmp_path, sources=[GYM])
    assert summary.accepted == {"gym": 2}
    payloads = conn.execute("select line_number, payload::varchar from raw.gym order by line_number").fetchall()
    assert payloads[0] == (2, '{"Member Email":"Dana@Example.com","Mobile":null,"club":"Downtown"}')
    assert payloads[1][0] == 4
    assert conn.execute("select line_number, reason from raw.rejected_records").fetchall() == [(3, "malformed_csv_row")]
