"""Landing → raw tables, without dbt: every line ends up accepted or rejected with a reason."""

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from orchestration.landing import ingestion
from orchestration.landing.ingestion import discover_landing_files, ingest_landing_dir


def write_jsonl(path: Path, lines: list, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "ingestion_test.duckdb"))
    yield connection
    connection.close()


def rejected(conn) -> list[tuple]:
    return conn.execute(
        "select file_path, line_number, reason from raw.rejected_records order by file_path, line_number"
    ).fetchall()


def test_lines_are_routed_by_type_or_rejected_with_a_reason(tmp_path, conn):
    write_jsonl(tmp_path / "events" / "a.jsonl", [
        {"type": "track", "messageId": "t1", "anonymousId": "a1", "event": "Viewed"},
        {"type": "Identify", "messageId": "i1", "userId": "u1", "traits": {"email": "x@y.z"}},
        "not json at all",
        "",
        {"type": "purchase", "messageId": "p1", "userId": "u1"},
        {"type": "track", "messageId": "t2", "event": "nobody"},
        [1, 2, 3],
        {"messageId": "n1", "userId": "u1"},
        {"type": "page", "messageId": "pg1", "context": {"traits": {"phone": "+1 415 555 0101"}}},
        {"type": "alias", "messageId": "al1", "previousId": "a1", "userId": "u1"},
        {"type": "screen", "messageId": "s1", "anonymousId": " "},
        {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme"},
    ])
    summary = ingest_landing_dir(conn, tmp_path)

    assert summary.accepted == {"tracks": 1, "identifies": 1, "pages": 1, "aliases": 1, "groups": 1}
    assert rejected(conn) == [
        ("events/a.jsonl", 3, "malformed_json"),
        ("events/a.jsonl", 5, "unknown_type"),
        ("events/a.jsonl", 6, "no_identity"),
        ("events/a.jsonl", 7, "not_a_json_object"),
        ("events/a.jsonl", 8, "missing_type"),
        ("events/a.jsonl", 11, "no_identity"),  # a blank anonymousId is no identity
    ]
    raw_text = conn.execute("select raw_text from raw.rejected_records where line_number = 3").fetchone()[0]
    assert raw_text == "not json at all"
    # The blank line is neither accepted nor rejected, and is counted apart.
    assert conn.execute(
        "select lines_total, blank_lines, lines_accepted, lines_rejected from raw.loaded_files"
    ).fetchone() == (11, 1, 5, 6)
    assert conn.execute("select payload ->> 'event' from raw.tracks").fetchone() == ("Viewed",)


def test_whitespace_around_a_line_does_not_change_its_outcome(tmp_path, conn):
    write_jsonl(tmp_path / "events" / "w.jsonl", [
        ' \t{"type": "track", "messageId": "w1", "anonymousId": "a"}  ',  # an object, padded
        '{"type": "track", "messageId": "w2", "anonymousId": "a"}\r',  # a CRLF line
        " \t ",  # only whitespace: blank
        '  ["type", "track"]',  # valid JSON, not an object
        ' "track"',
        "42",
    ])
    summary = ingest_landing_dir(conn, tmp_path)

    assert summary.accepted == {"tracks": 2}
    assert conn.execute("select message_id, payload ->> 'anonymousId' from raw.tracks order by 1").fetchall() == [
        ("w1", "a"), ("w2", "a")]
    assert rejected(conn) == [("events/w.jsonl", n, "not_a_json_object") for n in (4, 5, 6)]
    assert conn.execute("select blank_lines from raw.loaded_files").fetchone() == (1,)


def test_gzip_files_and_nested_folders_are_read(tmp_path, conn):
    write_jsonl(tmp_path / "events" / "2024" / "01" / "b.jsonl.gz",
                [{"type": "track", "messageId": f"m{i}", "anonymousId": "a"} for i in range(3)], gz=True)
    ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select count(*), min(file_path) from raw.tracks").fetchone() == (3, "events/2024/01/b.jsonl.gz")


def test_missing_message_id_is_derived_from_the_content_deterministically(tmp_path, conn):
    message = {"type": "track", "anonymousId": "a1", "event": "Opened", "timestamp": "2024-01-01T00:00:00Z"}
    write_jsonl(tmp_path / "events" / "a.jsonl", [message, message])
    write_jsonl(tmp_path / "events" / "b.jsonl", [json.dumps(message, indent=None, separators=(", ", " : "))])
    ingest_landing_dir(conn, tmp_path)
    ids = conn.execute("select distinct message_id, message_id_is_derived from raw.tracks").fetchall()
    assert len(ids) == 1 and ids[0][0].startswith("derived-") and ids[0][1] is True


def test_windows_line_endings_and_utf8_content(tmp_path, conn):
    path = tmp_path / "events" / "crlf.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        b'{"type":"track","messageId":"c1","anonymousId":"caf\xc3\xa9"}\r\n'
        b'{"type":"track","messageId":"c2","anonymousId":"b"}\r\n'
    )
    ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select payload ->> 'anonymousId' from raw.tracks order by line_number").fetchall() == [
        ("café",), ("b",)
    ]
    assert rejected(conn) == []


def test_invalid_utf8_rejects_only_the_lines_that_hold_it(tmp_path, conn):
    path = tmp_path / "events" / "bad.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        b'{"type":"track","messageId":"ok1","anonymousId":"a"}\n'
        b'{"type":"track","messageId":"bad","anonymousId":"\xff\xfe"}\n'
        b'{"type":"track","messageId":"ok2","anonymousId":"b"}\n'
    )
    ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select message_id from raw.tracks order by 1").fetchall() == [("ok1",), ("ok2",)]
    assert rejected(conn) == [("events/bad.jsonl", 2, "invalid_utf8")]
    assert sorted(path.parent.iterdir()) == [path]  # the repaired copy is not left in the landing folder


def test_unreadable_gzip_is_rejected_as_a_whole_and_the_rest_still_loads(tmp_path, conn):
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "broken.jsonl.gz").write_bytes(b"this is not gzip")
    write_jsonl(tmp_path / "events" / "good.jsonl", [{"type": "track", "messageId": "g", "anonymousId": "a"}])
    ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select count(*) from raw.tracks").fetchone()[0] == 1
    reasons = conn.execute("select file_path, line_number, reason from raw.rejected_records").fetchall()
    assert [(f, n) for f, n, _ in reasons] == [("events/broken.jsonl.gz", None)]
    assert reasons[0][2] == "unreadable_file"


def test_a_gzip_file_cut_short_keeps_the_lines_before_the_cut(tmp_path, conn):
    lines = [{"type": "track", "messageId": f"m{i}", "anonymousId": "a", "properties": {"n": i}} for i in range(2000)]
    text = "".join(json.dumps(line) + "\n" for line in lines).encode()
    compressed = gzip.compress(text)
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "cut.jsonl.gz").write_bytes(compressed[: len(compressed) * 2 // 3])
    summary = ingest_landing_dir(conn, tmp_path)
    kept = summary.accepted["tracks"]
    assert 0 < kept < 2000
    assert conn.execute("select min(message_id = 'm0') from raw.tracks where line_number = 1").fetchone()[0]
    reasons = dict(conn.execute("select reason, count(*) from raw.rejected_records group by 1").fetchall())
    assert reasons.pop("truncated_file") == 1
    assert sum(reasons.values()) <= 1  # the line the cut went through, if any: malformed_json
    assert set(reasons) <= {"malformed_json"}


def test_files_are_loaded_once_and_a_rewritten_file_again(tmp_path, conn):
    path = write_jsonl(tmp_path / "events" / "a.jsonl", [{"type": "track", "messageId": "m1", "anonymousId": "a"}])
    first = ingest_landing_dir(conn, tmp_path)
    second = ingest_landing_dir(conn, tmp_path)
    assert (len(first.files_loaded), first.files_skipped) == (1, 0)
    assert (len(second.files_loaded), second.files_skipped) == (0, 1)
    assert conn.execute("select count(*) from raw.tracks").fetchone()[0] == 1

    write_jsonl(path, [{"type": "track", "messageId": "m1", "anonymousId": "a"},
                       {"type": "track", "messageId": "m2", "anonymousId": "a"}])
    third = ingest_landing_dir(conn, tmp_path)
    assert len(third.files_loaded) == 1
    assert conn.execute("select count(*), count(distinct load_id) from raw.loaded_files").fetchone() == (2, 2)


def test_a_failure_part_way_loses_nothing_and_the_next_run_completes(tmp_path, conn, monkeypatch):
    write_jsonl(tmp_path / "events" / "a.jsonl", [{"type": "track", "messageId": "a", "anonymousId": "x"}])
    write_jsonl(tmp_path / "events" / "b.jsonl", [{"type": "track", "messageId": "b", "anonymousId": "x"}])
    real_write = ingestion._write_events
    calls = []

    def write_then_die(conn_, context, staged):
        result = real_write(conn_, context, staged)  # rows are written inside the transaction …
        calls.append(context["file_path"])
        if context["file_path"] == "events/b.jsonl":
            raise KeyboardInterrupt("killed")  # … and the process dies before it commits
        return result

    monkeypatch.setattr(ingestion, "_write_events", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select file_path from raw.loaded_files").fetchall() == [("events/a.jsonl",)]
    assert conn.execute("select message_id from raw.tracks").fetchall() == [("a",)]

    monkeypatch.setattr(ingestion, "_write_events", real_write)
    summary = ingest_landing_dir(conn, tmp_path)
    assert [f.relative_path for f in summary.files_loaded] == ["events/b.jsonl"]
    assert conn.execute("select message_id from raw.tracks order by 1").fetchall() == [("a",), ("b",)]


def test_contact_list_rows_keep_other_columns_as_traits(tmp_path, conn):
    (tmp_path / "contacts").mkdir()
    (tmp_path / "contacts" / "Webinar Attendees.csv").write_text(
        "Name,E-mail,Phone Number,Attended At\n"
        "Dana, Dana@Example.com ,(415) 555-0101,2024-03-08\n"
        '"Lee, Sam",,415.555.0102,2024-03-08\n'
        "Nobody,,,2024-03-08\n"
        "Too,many,columns,in,this,row\n"
        "Mia,mia@example.net,,\n"
    )
    summary = ingest_landing_dir(conn, tmp_path)
    rows = conn.execute(
        "select list_name, row_number, line_number, email, phone, traits::varchar from raw.contacts order by row_number"
    ).fetchall()
    assert rows == [
        ("webinar_attendees", 1, 2, "Dana@Example.com", "(415) 555-0101", '{"name":"Dana","attended_at":"2024-03-08"}'),
        ("webinar_attendees", 2, 3, None, "415.555.0102", '{"name":"Lee, Sam","attended_at":"2024-03-08"}'),
        ("webinar_attendees", 5, 6, "mia@example.net", None, '{"name":"Mia","attended_at":null}'),
    ]
    assert rejected(conn) == [
        ("contacts/Webinar Attendees.csv", 4, "no_identity"),
        ("contacts/Webinar Attendees.csv", 5, "malformed_csv_row"),
    ]
    assert summary.rejected == {"no_identity": 1, "malformed_csv_row": 1}


def test_contact_list_without_email_or_phone_is_rejected_whole_and_others_load(tmp_path, conn):
    (tmp_path / "contacts").mkdir()
    (tmp_path / "contacts" / "badges.csv").write_text("badge_id,name\nB1,Dana\n")
    (tmp_path / "contacts" / "crm.csv").write_text("email\nx@example.com\n")
    ingest_landing_dir(conn, tmp_path)
    (file_path, line, raw_text, reason, detail), = conn.execute(
        "select file_path, line_number, raw_text, reason, detail from raw.rejected_records"
    ).fetchall()
    assert (file_path, line, raw_text, reason) == ("contacts/badges.csv", 1, "badge_id,name", "missing_identifier_columns")
    assert "'email'" in detail and "'phone'" in detail and "found: badge_id, name" in detail
    assert conn.execute("select email from raw.contacts").fetchall() == [("x@example.com",)]


def test_semicolon_delimited_lists_and_empty_files(tmp_path, conn):
    (tmp_path / "contacts").mkdir()
    (tmp_path / "contacts" / "store.csv").write_text("first_name;Mobile\nSam;(415) 555-0102\n")
    (tmp_path / "contacts" / "empty.csv").write_text("")
    write_jsonl(tmp_path / "events" / "empty.jsonl", [])
    summary = ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select phone, traits ->> 'first_name' from raw.contacts").fetchall() == [
        ("(415) 555-0102", "Sam")
    ]
    assert len(summary.files_loaded) == 3
    assert rejected(conn) == []


def test_discovery_ignores_other_files(tmp_path):
    write_jsonl(tmp_path / "events" / "a.jsonl", [])
    (tmp_path / "events" / "notes.txt").write_text("x")
    (tmp_path / "contacts").mkdir()
    (tmp_path / "contacts" / "list.csv").write_text("email\n")
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "people.csv").write_text("x\n")
    assert [f.relative_path for f in discover_landing_files(tmp_path)] == ["events/a.jsonl", "contacts/list.csv"]


def test_identity_fields_follow_the_identity_rules(tmp_path, conn):
    from orchestration.core import settings
    from orchestration.landing.ingestion import IdentityFields

    shipped = IdentityFields.from_rules(settings.identity_rules())
    assert set(IdentityFields().message_paths) <= set(shipped.message_paths)  # the defaults are the shipped rules
    rules = {"identifier_types": {"crm_id": {"sources": ["traits.crm_id", "context.crm.id", "column.CRM ID"]}}}
    identity = IdentityFields.from_rules(rules)
    assert "$.traits.crm_id" in identity.message_paths and "$.context.crm.id" in identity.message_paths
    assert identity.contact_columns == ("crm_id",)

    write_jsonl(tmp_path / "events" / "a.jsonl", [
        {"type": "identify", "messageId": "crm-only", "traits": {"crm_id": "C-1"}},
        {"type": "track", "messageId": "nothing", "traits": {"plan": "pro"}},
    ])
    (tmp_path / "contacts").mkdir()
    (tmp_path / "contacts" / "crm.csv").write_text("CRM ID,name\nC-2,Ann\n,Bob\n")
    ingest_landing_dir(conn, tmp_path, identity)
    assert conn.execute("select message_id from raw.identifies").fetchall() == [("crm-only",)]
    assert conn.execute("select traits ->> 'crm_id' from raw.contacts").fetchall() == [("C-2",)]
    assert rejected(conn) == [("contacts/crm.csv", 3, "no_identity"), ("events/a.jsonl", 2, "no_identity")]



def test_gzip_files_are_decompressed_one_ahead_into_the_callers_scratch_folder(tmp_path):
    first = write_jsonl(tmp_path / "events" / "1.jsonl.gz", [{"n": 1}], gz=True)
    broken = tmp_path / "events" / "2.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    third = write_jsonl(tmp_path / "events" / "3.jsonl.gz", [{"n": 3}], gz=True)
    plain = write_jsonl(tmp_path / "events" / "4.jsonl", [{"n": 4}])
    with ingestion.GunzipAhead([first, broken, third, plain]) as ahead:
        for path, number in ((first, 1), (third, 3)):
            scratch = tmp_path / f"scratch-{number}"
            scratch.mkdir()
            if path is third:
                with pytest.raises(ingestion.UNREADABLE_GZIP):  # what decompressing raised, where the file is taken
                    ahead.take(broken, scratch)
            [text] = ahead.take(path, scratch)
            assert text.parent == scratch and json.loads(text.read_text()) == {"n": number}
        assert ahead.take(plain, tmp_path) == [plain]  # a plain file is read where it is


def test_a_file_larger_than_a_piece_loads_as_if_read_whole(tmp_path, conn, monkeypatch):
    """read_text reads at most about 3.9 GiB as one string: gzip files, and plain files above a
    limit, are read in pieces cut at line ends. With pieces of 200 bytes, every outcome and line number is that of the whole file."""
    lines = [{"type": "track", "messageId": f"m{i}", "anonymousId": "a", "properties": {"n": i}} for i in range(40)]
    lines[7], lines[8], lines[21] = "not json", "", {"type": "track", "messageId": "bad", "anonymousId": "\udcff"}
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()
    text = text.replace(b'"\\udcff"', b'"\xff"')  # one line of invalid UTF-8, in a middle piece
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "plain.jsonl").write_bytes(text.rstrip(b"\n"))  # no newline at the end
    (tmp_path / "events" / "packed.jsonl.gz").write_bytes(gzip.compress(text))
    (tmp_path / "events" / "cut.jsonl.gz").write_bytes(gzip.compress(text)[:-40])

    def outcomes(connection):
        return (connection.execute("select file_path, line_number, message_id from raw.tracks order by all").fetchall(),
                connection.execute("select file_path, line_number, reason from raw.rejected_records order by all").fetchall(),
                connection.execute("select file_path, lines_total, blank_lines from raw.loaded_files order by all").fetchall())

    ingest_landing_dir(conn, tmp_path)
    whole = outcomes(conn)
    monkeypatch.setattr(ingestion, "PIECE_BYTES", 200)
    monkeypatch.setattr(ingestion, "PLAIN_READ_BYTES", 500)  # the plain file (~3 kB) is copied too
    pieces = ingestion._text_pieces(tmp_path / "events" / "packed.jsonl.gz", tmp_path)
    assert len(pieces) > 10 and b"\n".join(piece.read_bytes() for piece in pieces) == text
    (tmp_path / "plain_pieces").mkdir()
    plain_pieces = ingestion._text_pieces(tmp_path / "events" / "plain.jsonl", tmp_path / "plain_pieces")
    assert len(plain_pieces) > 10 and b"\n".join(piece.read_bytes() for piece in plain_pieces) == text.rstrip(b"\n")
    in_pieces = duckdb.connect(str(tmp_path / "in_pieces.duckdb"))
    ingest_landing_dir(in_pieces, tmp_path)
    assert outcomes(in_pieces) == whole
    tracks, reasons, _ = whole
    assert ("events/plain.jsonl", 40, "m39") in tracks and len([t for t in tracks if t[0] == "events/packed.jsonl.gz"]) == 37
    assert ("events/packed.jsonl.gz", 22, "invalid_utf8") in reasons and ("events/plain.jsonl", 8, "malformed_json") in reasons
    assert [r for r in reasons if r[0] == "events/cut.jsonl.gz"][-1][2] == "truncated_file"


# ---------------------------------------------------------------------------------------------
# The front door: one bad file never stops the others, and nothing from outside comes in
# ---------------------------------------------------------------------------------------------

GOOD = {"type": "track", "messageId": "good", "anonymousId": "a"}


def everything_landed(conn) -> str:
    """Every text the warehouse took in: raw payloads and rejected lines."""
    tables = [*ingestion.MESSAGE_TABLES.values()]
    texts = [conn.execute(f"select coalesce(string_agg(payload::varchar, ' '), '') from raw.{t}").fetchone()[0]
             for t in tables]
    texts.append(conn.execute("select coalesce(string_agg(concat_ws(' ', raw_text, detail), ' '), '') "
                              "from raw.rejected_records").fetchone()[0])
    texts.append(conn.execute("select coalesce(string_agg(concat_ws(' ', email, traits::varchar), ' '), '') "
                              "from raw.contacts").fetchone()[0])
    return " ".join(texts)


def test_a_symlink_that_leads_out_of_the_landing_folder_is_rejected_unread(tmp_path, conn):
    landing, outside = tmp_path / "landing", tmp_path / "elsewhere"
    outside.mkdir()
    secret = write_jsonl(outside / "secret.jsonl", [{"type": "track", "messageId": "secret", "anonymousId": "s3cr3t"}])
    (outside / "passwd.csv").write_text("email\nroot@s3cr3t.example\n")
    write_jsonl(landing / "events" / "good.jsonl", [GOOD])
    (landing / "events" / "leak.jsonl").symlink_to(secret)
    (landing / "events" / "sub").mkdir()
    (landing / "events" / "sub" / "relative.jsonl").symlink_to(Path("..", "..", "..", "elsewhere", "secret.jsonl"))
    (landing / "events" / "again.jsonl").symlink_to(landing / "events" / "good.jsonl")  # inside: an ordinary file
    (landing / "contacts").mkdir()
    (landing / "contacts" / "leak.csv").symlink_to(outside / "passwd.csv")

    summary = ingest_landing_dir(conn, landing)
    assert "s3cr3t" not in everything_landed(conn)
    assert rejected(conn) == [("contacts/leak.csv", None, "outside_landing_dir"),
                              ("events/leak.jsonl", None, "outside_landing_dir"),
                              ("events/sub/relative.jsonl", None, "outside_landing_dir")]
    assert summary.rejected == {"outside_landing_dir": 3}
    assert conn.execute("select file_path, line_number from raw.tracks order by 1").fetchall() == [
        ("events/again.jsonl", 1), ("events/good.jsonl", 1)]
    detail = conn.execute("select detail from raw.rejected_records limit 1").fetchone()[0]
    assert "outside" in detail and "s3cr3t" not in detail
    assert conn.execute("select count(*) from raw.loaded_files where file_kind in ('events', 'contacts')"
                        ).fetchone()[0] == 5
    again = ingest_landing_dir(conn, landing)  # recorded once: a re-run skips them
    assert (len(again.files_loaded), again.files_skipped) == (0, 5)
    assert len(rejected(conn)) == 3


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root reads a chmod 000 file: the injected variant below covers it")
def test_a_file_without_read_permission_is_rejected_and_the_others_load(tmp_path, conn):
    locked = write_jsonl(tmp_path / "events" / "locked.jsonl", [{**GOOD, "messageId": "locked"}])
    write_jsonl(tmp_path / "events" / "good.jsonl", [GOOD])
    locked.chmod(0)
    try:
        ingest_landing_dir(conn, tmp_path)
    finally:
        locked.chmod(0o644)
    assert conn.execute("select message_id from raw.tracks").fetchall() == [("good",)]
    assert rejected(conn) == [("events/locked.jsonl", None, "unreadable_file")]


def test_a_file_that_cannot_be_read_is_rejected_and_the_others_load(tmp_path, conn, monkeypatch):
    locked = write_jsonl(tmp_path / "events" / "locked.jsonl", [{**GOOD, "messageId": "locked"}])
    write_jsonl(tmp_path / "events" / "good.jsonl", [GOOD])
    (tmp_path / "contacts").mkdir()
    locked_list = tmp_path / "contacts" / "locked.csv"
    locked_list.write_text("email\nx@example.com\n")
    (tmp_path / "contacts" / "crm.csv").write_text("email\ny@example.com\n")
    real_open = Path.open

    def refuse(self, *args, **kwargs):  # what chmod 000 does for anyone but root
        if self.name.startswith("locked"):
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    summary = ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select message_id from raw.tracks").fetchall() == [("good",)]
    assert conn.execute("select email from raw.contacts").fetchall() == [("y@example.com",)]
    assert rejected(conn) == [("contacts/locked.csv", None, "unreadable_file"),
                              ("events/locked.jsonl", None, "unreadable_file")]
    assert summary.rejected == {"unreadable_file": 2}
    assert "Permission denied" in conn.execute("select min(detail) from raw.rejected_records").fetchone()[0]
    assert ingest_landing_dir(conn, tmp_path).files_skipped == 4  # still unreadable: not recorded twice
    assert len(rejected(conn)) == 2

    monkeypatch.setattr(Path, "open", real_open)  # readable again: it loads
    ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select message_id from raw.tracks order by 1").fetchall() == [("good",), ("locked",)]
    assert conn.execute("select email from raw.contacts order by 1").fetchall() == [("x@example.com",), ("y@example.com",)]


def test_a_file_gone_between_discovery_and_loading_is_rejected_and_the_others_load(tmp_path, conn, monkeypatch):
    write_jsonl(tmp_path / "events" / "a_gone.jsonl", [{**GOOD, "messageId": "gone"}])
    write_jsonl(tmp_path / "events" / "b_good.jsonl", [GOOD])
    real_sha = ingestion.file_sha256

    def hash_then_vanish(path):
        digest = real_sha(path)
        if path.name == "a_gone.jsonl":
            path.unlink()
        return digest

    monkeypatch.setattr(ingestion, "file_sha256", hash_then_vanish)
    ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select message_id from raw.tracks").fetchall() == [("good",)]
    assert rejected(conn) == [("events/a_gone.jsonl", None, "unreadable_file")]

    monkeypatch.setattr(ingestion, "file_sha256", real_sha)  # it comes back, as it was: it loads
    write_jsonl(tmp_path / "events" / "a_gone.jsonl", [{**GOOD, "messageId": "gone"}])
    ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select message_id from raw.tracks order by 1").fetchall() == [("gone",), ("good",)]


def test_a_byte_order_mark_opens_a_file_without_spoiling_its_first_line(tmp_path, conn):
    bom = "\ufeff".encode()
    first, second = json.dumps({**GOOD, "messageId": "first"}), json.dumps({**GOOD, "messageId": "second"})
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "bom.jsonl").write_bytes(bom + f"{first}\r\n{second}\r\n".encode())
    (tmp_path / "events" / "bom.jsonl.gz").write_bytes(gzip.compress(bom + f"{first}\n".encode()))
    (tmp_path / "contacts").mkdir()
    (tmp_path / "contacts" / "crm.csv").write_bytes(bom + b"email,name\nx@example.com,Ann\n")
    (tmp_path / "contacts" / "badges.csv").write_bytes(bom + b"badge_id,name\nB1,Dana\n")
    ingest_landing_dir(conn, tmp_path)
    assert conn.execute("select file_path, message_id from raw.tracks order by all").fetchall() == [
        ("events/bom.jsonl", "first"), ("events/bom.jsonl", "second"), ("events/bom.jsonl.gz", "first")]
    assert conn.execute("select email, traits::varchar from raw.contacts").fetchall() == [
        ("x@example.com", '{"name":"Ann"}')]
    assert conn.execute("select file_path, raw_text, reason from raw.rejected_records").fetchall() == [
        ("contacts/badges.csv", "badge_id,name", "missing_identifier_columns")]


def test_a_csv_wider_than_the_limit_is_rejected_whole_before_duckdb_reads_it(tmp_path, conn, monkeypatch):
    import time

    from orchestration.landing.sources import LandingSource

    (tmp_path / "contacts").mkdir()
    header = ",".join(["email", *(f"c{i}" for i in range(9_999))])
    (tmp_path / "contacts" / "wide.csv").write_text(header + "\n" + ",".join(["x@example.com"] + ["v"] * 9_999) + "\n")
    (tmp_path / "contacts" / "crm.csv").write_text("email\ny@example.com\n")
    source = LandingSource("feed", "feed", "tsv")
    (tmp_path / "feed").mkdir()
    (tmp_path / "feed" / "wide.tsv").write_text("\t".join(f"c{i}" for i in range(1_001)) + "\n")
    started = time.perf_counter()
    summary = ingest_landing_dir(conn, tmp_path, sources=[source])
    elapsed = time.perf_counter() - started
    assert elapsed < 5, f"{elapsed:.1f} s"  # DuckDB's planner takes minutes over 10,000 columns
    assert conn.execute("select email from raw.contacts").fetchall() == [("y@example.com",)]
    rows = conn.execute("select file_path, line_number, reason, detail, length(raw_text) from raw.rejected_records "
                        "order by 1").fetchall()
    assert [row[:3] for row in rows] == [("contacts/wide.csv", 1, "too_many_columns"), ("feed/wide.tsv", 1, "too_many_columns")]
    assert "10000 columns" in rows[0][3] and "LANDING_MAX_CSV_COLUMNS" in rows[0][3] and "1000" in rows[0][3]
    assert rows[0][4] <= 1_000  # the header is kept shortened
    assert summary.rejected == {"too_many_columns": 2}

    monkeypatch.setenv("LANDING_MAX_CSV_COLUMNS", "1")  # the limit is configurable
    (tmp_path / "contacts" / "two.csv").write_text("email,name\nz@example.com,Zoe\n")
    ingest_landing_dir(conn, tmp_path, sources=[source])
    assert conn.execute("select reason from raw.rejected_records where file_path = 'contacts/two.csv'").fetchall() == [
        ("too_many_columns",)]
    monkeypatch.setenv("LANDING_MAX_CSV_COLUMNS", "lots")
    with pytest.raises(ValueError, match="LANDING_MAX_CSV_COLUMNS"):
        ingestion.max_csv_columns()


def test_the_column_count_follows_the_delimiter_and_quotes():
    assert ingestion.csv_header_columns('a,"b,c",d') == 3
    assert ingestion.csv_header_columns("a;b;c;d") == 4
    assert ingestion.csv_header_columns("a\tb", "\t") == 2
    assert ingestion.csv_header_columns("\ufeffemail") == 1
