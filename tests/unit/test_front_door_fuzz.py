"""Bad input at the front door, generated with hypothesis, through the real ingestion functions.

Each example is a landing folder of event files (plain or gzip, sometimes cut short or empty) and
contact lists (odd delimiters, quotes, encodings), mixing good lines with random bytes, invalid
UTF-8, byte order marks, deeply nested JSON, wrong value types and timestamps in the future, the distant past or
unparseable. Whatever comes, ingestion must not crash, every line must end in a raw table or in
``raw.rejected_records`` with a reason, and every good line must be accepted. The counts over all
examples are printed at the end (``pytest -s``) and reported in docs/reliability.md.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.landing.ingestion import MESSAGE_TABLES, ingest_landing_dir

TOTALS: Counter = Counter()

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=3, max_size=12)
odd_timestamps = st.one_of(
    st.just("2999-12-31T23:59:59Z"), st.just("0001-01-01T00:00:00Z"), st.just("1970-01-01T00:00:00Z"),
    st.just("yesterday"), st.just("2024-13-45T25:61:00Z"), st.just(""), st.integers(), st.none(),
    st.text(max_size=20),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


@st.composite
def good_message(draw, number: int) -> tuple[str, str]:
    """A valid message (odd timestamps and property values included): it must be accepted."""
    message = {
        "type": draw(st.sampled_from(["track", "identify", "page", "screen", "alias", "group", " Track "])),
        "messageId": f"good-{number}-{draw(ids)}",
        draw(st.sampled_from(["anonymousId", "userId"])): draw(ids),
        "timestamp": draw(odd_timestamps),
        "properties": draw(json_values),
        "traits": draw(st.one_of(st.dictionaries(st.text(max_size=8), json_scalars, max_size=3), json_values)),
    }
    if message["type"].strip().lower() == "alias":
        message["previousId"] = draw(ids)
    return message["messageId"], json.dumps(message, ensure_ascii=draw(st.booleans()))


def nested(depth: int) -> str:
    return ('{"type": "track", "messageId": "deep", "anonymousId": "a", "properties": '
            + '{"a": ' * depth + "1" + "}" * depth + "}")


bad_lines = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),  # random bytes
    st.builds(lambda s: b'{"type": "track", "anonymousId": "' + s + b'"}',
              st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"caf\xe9"])),  # invalid UTF-8
    st.integers(min_value=1, max_value=5000).map(lambda d: nested(d).encode()),  # deeply nested JSON
    st.fixed_dictionaries({  # wrong value types
        "type": st.one_of(st.integers(), st.lists(st.text(max_size=3), max_size=2), st.just("track")),
        "messageId": st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.none()),
        "userId": st.one_of(st.integers(), st.lists(ids, max_size=2), st.dictionaries(ids, ids, max_size=2)),
        "traits": st.one_of(st.lists(json_scalars, max_size=3), st.text(max_size=5)),
    }).map(lambda m: json.dumps(m).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),  # valid JSON, rarely an object
    st.text(max_size=100).map(lambda t: t.replace("\n", " ").replace("\r", " ").encode("utf-8", "surrogatepass")),
)


@st.composite
def event_file(draw, first_number: int):
    good: dict[str, int] = {}
    lines: list[bytes] = []
    for i in range(draw(st.integers(min_value=0, max_value=12))):
        if draw(st.booleans()):
            message_id, text = draw(good_message(first_number + i))
            lines.append(text.encode())
            good[message_id] = len(lines)
        else:
            lines.append(draw(bad_lines))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    # a UTF-8 byte order mark (Windows editors) opens the file: the first line keeps its outcome
    content = draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + b"".join(line + ending for line in lines)
    form = draw(st.sampled_from(["plain", "plain", "gzip", "gzip_cut", "empty"]))
    if form == "empty":
        return "empty.jsonl", b"", {}, 0
    if form == "plain":
        return "f.jsonl", content, good, len(lines)
    compressed = gzip.compress(content)
    if form == "gzip":
        return "f.jsonl.gz", compressed, good, len(lines)
    return "f.jsonl.gz", compressed[: draw(st.integers(min_value=0, max_value=len(compressed)))], None, len(lines)


@st.composite
def contact_file(draw):
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    rows, good = [], set()
    for i in range(draw(st.integers(min_value=0, max_value=8))):
        name = draw(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12))
        quoted = '"' + name.replace('"', '""') + '"'
        email = f"person{i}.{draw(ids)}@example.com" if draw(st.booleans()) else ""
        if email:
            good.add(email)
        rows.append(delimiter.join([email, quoted, draw(st.sampled_from(["", "(415) 555-0101", "+44 20 7946 0958"]))]))
    if draw(st.booleans()):  # a row with too many fields
        rows.append(delimiter.join(["x@example.com", "a", "b", "c", "d"]))
        good = None if delimiter == "," else good
    text = "\n".join([delimiter.join(["email", "name", "phone"]), *rows]) + "\n"
    try:
        content = text.encode(encoding)
    except UnicodeEncodeError:
        content, encoding = text.encode("utf-8"), "utf-8"
    # Good rows are only promised for a file DuckDB can read as UTF-8 with a detectable delimiter.
    expected = good if encoding in ("utf-8", "utf-8-sig") and rows else None
    return content, expected, len(rows)


def account_for_every_line(conn) -> None:
    raw = " union all ".join(f"select load_id from raw.{t}" for t in [*MESSAGE_TABLES.values(), "contacts"])
    unreconciled = conn.execute(f"""
        select f.file_path from raw.loaded_files f
        left join (select load_id, count(*) n from ({raw}) group by 1) r using (load_id)
        left join (select load_id, count(*) n from raw.rejected_records group by 1) j using (load_id)
        where f.lines_total <> coalesce(r.n, 0) + coalesce(j.n, 0)
           or f.lines_accepted <> coalesce(r.n, 0) or f.lines_rejected <> coalesce(j.n, 0)
    """).fetchall()
    assert unreconciled == []
    assert conn.execute("select count(*) from raw.rejected_records where reason is null or reason = ''").fetchone()[0] == 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=3).flatmap(
           lambda seeds: st.tuples(*[event_file(n * 100) for n in range(len(seeds))])),
       contacts=st.lists(contact_file(), max_size=2))
def test_generated_bad_input_never_crashes_and_every_line_is_accounted_for(events, contacts):
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        landing = Path(scratch)
        (landing / "events").mkdir()
        (landing / "contacts").mkdir()
        good_messages, cut_files = {}, set()
        lines_tried = 0
        for index, (name, content, good, lines) in enumerate(events):
            path = landing / "events" / f"{index}-{name}"
            path.write_bytes(content)
            lines_tried += lines
            if good is None:
                cut_files.add(path.name)
            else:
                good_messages.update(good)
        good_contacts: set[str] = set()
        for index, (content, good, rows) in enumerate(contacts):
            (landing / "contacts" / f"list_{index}.csv").write_bytes(content)
            lines_tried += rows
            good_contacts |= good or set()

        with duckdb.connect() as conn:
            summary = ingest_landing_dir(conn, landing)
            account_for_every_line(conn)
            accepted_ids = {r[0] for r in conn.execute(
                " union all ".join(f"select message_id from raw.{t}" for t in MESSAGE_TABLES.values())).fetchall()}
            accepted_emails = {r[0] for r in conn.execute("select email from raw.contacts").fetchall()}
            lost = set(good_messages) - accepted_ids
            lost_contacts = good_contacts - accepted_emails
            assert not lost, f"good lines lost: {sorted(lost)}"
            assert not lost_contacts, f"good contact rows lost: {sorted(lost_contacts)}"

            whole_file_reasons = ("unreadable_file", "unreadable_csv", "missing_identifier_columns",
                                  "too_many_columns", "outside_landing_dir")
            per_file = dict(conn.execute("""
                select f.file_path,
                       f.lines_total + f.blank_lines - count(r.reason) filter (where r.reason = 'truncated_file')
                from raw.loaded_files f left join raw.rejected_records r using (load_id)
                group by f.file_path, f.lines_total, f.blank_lines""").fetchall())
            whole = {r[0] for r in conn.execute("select file_path from raw.rejected_records where reason in "
                                                f"{whole_file_reasons}").fetchall()}
            blank = conn.execute("select coalesce(sum(blank_lines), 0) from raw.loaded_files").fetchone()[0]
        written = {f"events/{i}-{name}": lines for i, (name, _, _, lines) in enumerate(events)}
        written |= {f"contacts/list_{i}.csv": rows for i, (_, _, rows) in enumerate(contacts)}
        for path, lines in written.items():
            if path in whole:
                TOTALS["lines in files rejected whole (one record each)"] += lines
            elif Path(path).name in cut_files:
                TOTALS["lines after a gzip cut (bytes missing)"] += lines - per_file.get(path, 0)
        # Every line tried is accepted, rejected, blank, in a file rejected whole, or after a gzip cut.
        whole_lines = sum(lines for path, lines in written.items() if path in whole)
        cut_lines = sum(lines - per_file.get(path, 0) for path, lines in written.items()
                        if path not in whole and Path(path).name in cut_files)
        line_rejections = sum(n for reason, n in summary.rejected.items() if reason not in (*whole_file_reasons, "truncated_file"))
        assert lines_tried == sum(summary.accepted.values()) + line_rejections + blank + whole_lines + cut_lines
        TOTALS["blank lines (counted in raw.loaded_files)"] += blank
        TOTALS["files"] += len(events) + len(contacts)
        TOTALS["lines tried"] += lines_tried
        TOTALS["good lines (must be accepted)"] += len(good_messages) + len(good_contacts)
        TOTALS["accepted"] += sum(summary.accepted.values())
        for reason, count in summary.rejected.items():
            TOTALS[f"rejected: {reason}"] += count
        TOTALS["lost"] += len(lost) + len(lost_contacts)


def test_a_10_mb_line_and_its_neighbours_land(tmp_path):
    big = {"type": "track", "messageId": "big", "anonymousId": "a", "properties": {"blob": "x" * 10_000_000}}
    lines = [{"type": "track", "messageId": "before", "anonymousId": "a"}, big,
             {"type": "track", "messageId": "after", "anonymousId": "a"}, '{"unterminated": "' + "y" * 10_000_000]
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "big.jsonl").write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    with duckdb.connect() as conn:
        summary = ingest_landing_dir(conn, tmp_path)
        account_for_every_line(conn)
        assert summary.accepted == {"tracks": 3} and summary.rejected == {"malformed_json": 1}
        assert conn.execute("select length(payload->>'$.properties.blob') from raw.tracks where message_id = 'big'"
                            ).fetchone()[0] == 10_000_000
    TOTALS["lines tried"] += 4
    TOTALS["good lines (must be accepted)"] += 3
    TOTALS["accepted"] += 3
    TOTALS["rejected: malformed_json"] += 1


@pytest.fixture(scope="module", autouse=True)
def report_totals():
    yield
    if TOTALS:
        print("\nfront door, generated input:", json.dumps(dict(sorted(TOTALS.items())), indent=2))
