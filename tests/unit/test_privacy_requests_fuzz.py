"""Privacy request files as hostile input, generated with hypothesis, through the real processing.

Each example is an inbox of request files in every format, mixing valid requests with random
bytes, JSON of every shape, hostile request ids (paths, NUL, very long), hostile identifiers
(quotes, SQL, control characters, megabytes) and CSV rows the csv module refuses. Whatever comes,
processing must not raise; every file leaves the inbox (removed, or set aside under a name made of
its content); every request read is audited or skipped as already done; every valid request runs;
nothing is written outside ``EXPORT_DIR/privacy``; and no table but the privacy log changes when
no valid delete was among them. The counts are printed at the end (``pytest -s``) and reported in
docs/reliability.md.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from orchestration.core import settings
from orchestration.privacy.requests import REQUEST_FILE_SUFFIXES, process_requests, read_request_file

RULES = settings.identity_rules()
TOTALS: Counter = Counter()

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["'; drop table marts.profiles; --", "o'brien@example.com", "../../../../tmp/x", "/tmp/abs/x",
                     "a\0b", "r" * 300, "$1", "%_\\", "null", "track", "\u202e\u0000", "x" * 5000]),
)
fields = st.fixed_dictionaries({}, optional={
    "request_id": hostile_text, "action": st.one_of(st.sampled_from(["export", "delete", "lock", "unlock"]), hostile_text),
    "identifier": st.one_of(st.sampled_from(["user_id:u1", "email:o'brien@example.com", "phone:(415) 555-0101"]),
                            hostile_text.map(lambda t: "email:" + t), hostile_text),
    "identifier_type": hostile_text, "identifier_value": hostile_text,
    "requested_by": st.one_of(st.just("dpo"), hostile_text), "requested_at": hostile_text,
})
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)
valid = st.fixed_dictionaries({
    "request_id": st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=20).map(lambda t: "r" + t),
    "action": st.sampled_from(["export", "delete", "lock", "unlock"]),
    "identifier": st.sampled_from(["user_id:u1", "email:o'brien@example.com", "phone:(415) 555-0101",
                                   "anonymous_id:'; drop table marts.profiles; --", "email:%_\\"]),
    "requested_by": st.just("dpo"),
})
entries = st.one_of(valid, valid, fields, json_values)


@st.composite
def request_file(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from(REQUEST_FILE_SUFFIXES))
    items = draw(st.lists(entries, max_size=6))
    if draw(st.integers(0, 9)) == 0:
        return suffix, draw(st.binary(max_size=300))
    if suffix == ".jsonl":
        text = "\n".join(json.dumps(item) for item in items)
        text += draw(st.sampled_from(["", "\n{not json\n", "\n[\"oops\"]\n", "\nnull\n"]))
    elif suffix == ".csv":
        rows = [item for item in items if isinstance(item, dict)]
        header = ["request_id", "action", "identifier", "requested_by"]
        text = ",".join(header) + "\n" + "".join(
            ",".join('"' + str(row.get(h, "")).replace('"', '""') + '"' for h in header) + "\n" for row in rows)
        text += draw(st.sampled_from(["", "c1,lock," + "x" * 140_000 + ",dpo\n", "a,b,c,d,e,f\n"]))
    elif suffix == ".json":
        text = json.dumps(items if draw(st.booleans()) else (items[0] if items else {}))
    else:
        import yaml
        text = yaml.safe_dump({"requests": items} if draw(st.booleans()) else items)
    return suffix, text.encode("utf-8", "surrogatepass")


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(request_file(), min_size=1, max_size=4))
def test_hostile_request_files_never_stop_the_rest(files):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        inbox, exports = root / "landing" / "privacy", root / "exports"
        inbox.mkdir(parents=True)
        for number, (suffix, content) in enumerate(files):
            (inbox / f"r{number}{suffix}").write_bytes(content)
        expected = sum(len(read_request_file(path)) for path in inbox.iterdir())
        with duckdb.connect(str(root / "identity_warehouse.duckdb")) as conn:
            conn.execute("create schema marts; create table marts.profiles (profile_id varchar, email varchar)")
            conn.execute("insert into marts.profiles values ('p1', 'kept@example.com')")
            batch = process_requests(conn, root / "landing", [], rules=RULES, salt="fuzz", export_dir=exports)
            audited = conn.execute("select count(*) from privacy.requests").fetchone()[0]
            outcomes = Counter(dict(conn.execute("select outcome, count(*) from privacy.requests group by 1").fetchall()))
            # every valid request ran: none is left without an outcome, and locks are where they should be
            assert conn.execute("select count(*) from privacy.requests where outcome is null").fetchone()[0] == 0
            assert conn.execute("select * from marts.profiles").fetchall() == [("p1", "kept@example.com")]
            assert conn.execute("select count(*) from duckdb_tables() where schema_name not in ('marts', 'privacy')"
                                ).fetchone()[0] == 0
        assert audited + batch.skipped == expected
        assert [p.name for p in inbox.iterdir()] in ([], ["invalid"])
        outside = [p for p in root.rglob("*") if p.is_file() and not (
            p.is_relative_to(inbox / "invalid") or p.parent == exports / "privacy"
            or p.name.startswith("identity_warehouse.duckdb"))]
        assert outside == []
    TOTALS.update(files=len(files), requests=expected, **{f"outcome {k}": v for k, v in outcomes.items()},
                  skipped=batch.skipped, set_aside=len(batch.files_set_aside))


@pytest.fixture(scope="module", autouse=True)
def report_totals():
    yield
    print("\nprivacy request fuzzing:", dict(sorted(TOTALS.items())))
