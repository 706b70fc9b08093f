"""The tools people use without reading the code, on real runs: the profile lookup (on the sample
warehouse), the analyst documentation (dbt docs generate), and adding a source with the scaffold
(a new CSV lands, its identifiers join the graph and merge with people already there)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.core import settings
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME, copy_dbt_project, environment
from tests.e2e.conftest import SampleRuns
from tests.unit.test_add_source import SESSION_USER, snowplow_csv


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], cwd=settings.PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def sample_env(sample_runs: SampleRuns, **more) -> dict:
    env = {**os.environ, "DUCKDB_PATH": str(sample_runs.database), "LANDING_DIR": str(sample_runs.landing), **more}
    env.pop("DAGSTER_HOME", None)
    return env


def test_lookup_finds_a_person_from_a_phone_as_typed(sample_runs: SampleRuns, tmp_path):
    result = cli("lookup", "(415) 555-0103", "--graph-dir", str(tmp_path), env=sample_env(sample_runs))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    profile_id = sample_runs.after_late_file.profile_of("phone", "+14155550103")
    assert f"profile {profile_id}  (found by phone:+14155550103)" in out
    for identifier in ("amp-user-ravi", "amp-web-ravi", "+14155550103"):
        assert identifier in out
    # where each trait came from, the latest events, and the links with their evidence
    assert "list:webinar_attendees contact:webinar_attendees:" in out
    assert "Signed Up" in out
    assert "user_id:amp-user-ravi == anonymous_id:amp-web-ravi" in out
    assert (tmp_path / f"{profile_id}.dot").read_text().startswith("graph identity {")
    if shutil.which("dot"):
        assert (tmp_path / f"{profile_id}.svg").read_text().lstrip().startswith("<?xml")


def test_lookup_takes_an_email_in_any_case_and_says_when_nothing_matches(sample_runs: SampleRuns, tmp_path):
    found = cli("lookup", "  Dana.Argelies@EXAMPLE.com ", "--no-graph", env=sample_env(sample_runs))
    assert found.returncode == 0 and "(found by email:dana.argelies@example.com)" in found.stdout
    missing = cli("lookup", "nobody@example.com", "--no-graph", env=sample_env(sample_runs))
    assert missing.returncode == 1 and "no profile holds 'nobody@example.com'" in missing.stderr


def test_analyst_docs_generate_and_document_every_mart(sample_runs: SampleRuns, tmp_path):
    env = sample_env(sample_runs)
    result = subprocess.run([settings.DBT_EXECUTABLE, "docs", "generate", "--target-path", str(tmp_path),
                             "--profiles-dir", str(settings.DBT_PROFILES_DIR)],
                            cwd=settings.DBT_PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "index.html").exists()
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    marts = [node for node in manifest["nodes"].values()
             if node["resource_type"] == "model" and node["schema"] in ("marts", "audiences")]
    assert {"profiles", "profile_identifiers", "profile_events", "profile_trait_sources", "profile_traits",
            "identity_links"} <= {node["name"] for node in marts}
    for node in marts:
        assert "```sql" in node["description"], f"{node['name']}: no example query"
        assert node["unique_id"] in catalog["nodes"], f"{node['name']}: not in the catalog"
        undocumented = [c for c in catalog["nodes"][node["unique_id"]]["columns"]
                        if not node["columns"].get(c, {}).get("description")]
        assert not undocumented, f"{node['name']}: columns without a description: {undocumented}"


GYM_CSV = """Member Email,Mobile,member_id,club,checked_in_at
Dana.Argelies@Example.com,,,Downtown,2024-06-05 07:30:00
,(415) 555-0103,,Harbour,2024-06-05 18:10:00
zoe.kim@example.org,415.555.0199,gym-778,Downtown,2024-06-06 06:45:00
"""


# Identifiers with quotes and SQL in them, landed in events like any other (explain once ran them).
CRAFTED_ANON = "x'); create table main.pwned as select 42 as answer; --"
OBRIEN = "o'brien@example.com"
HOSTILE_MESSAGES = [
    {"type": "identify", "messageId": "hostile-001", "anonymousId": CRAFTED_ANON, "userId": "hostile-user-1",
     "traits": {"email": "O'Brien@Example.com"}, "timestamp": "2024-06-01T10:00:00Z", "receivedAt": "2024-06-01T10:00:00Z"},
    {"type": "track", "messageId": "hostile-002", "anonymousId": "pct%_und\\back'slash\"dq", "userId": "hostile-user-2",
     "event": "Opened", "timestamp": "2024-06-01T11:00:00Z", "receivedAt": "2024-06-01T11:00:00Z"},
    {"type": "identify", "messageId": "hostile-003", "userId": "é'Ω💥 $1 ?", "traits": {"email": "ünï'code@example.com"},
     "timestamp": "2024-06-01T12:00:00Z", "receivedAt": "2024-06-01T12:00:00Z"},
]


@pytest.fixture(scope="session")
def added_source(tmp_path_factory):
    """A copy of the project; the webinar story as the people already there, and a few people whose
    identifiers hold quotes and SQL; a gym's check-in CSV scaffolded with add-source, then one run."""
    project = tmp_path_factory.mktemp("add-source") / "dbt_project"
    copy_dbt_project(project)
    landing = tmp_path_factory.mktemp("add-source-landing")
    (landing / "events").mkdir()
    shutil.copy(SEEDS / "events" / "stories" / "amplitude_webinar_signups.jsonl", landing / "events")
    (landing / "events" / "hostile.jsonl").write_text("".join(json.dumps(m) + "\n" for m in HOSTILE_MESSAGES))
    (landing / "contacts").mkdir()
    shutil.copy(SEEDS / "contacts" / "webinar_attendees.csv", landing / "contacts")
    sample = tmp_path_factory.mktemp("samples") / "gym_checkins.csv"
    sample.write_text(GYM_CSV)
    database = tmp_path_factory.mktemp("add-source-db") / WAREHOUSE_FILE_NAME
    env = {**os.environ, "DBT_PROJECT_DIR": str(project), "LANDING_DIR": str(landing), "DUCKDB_PATH": str(database),
           "EXPORT_DIR": str(tmp_path_factory.mktemp("add-source-exports"))}
    env.pop("DAGSTER_HOME", None)
    scaffolded = cli("add-source", "gym_checkins", str(sample), env=env)
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    # a tracker's CSV export: the cookie id inside a JSON cell's array, an e-mail in the contexts envelope
    export = snowplow_csv(sample.parent / "sp_export.csv")
    tracker = cli("add-source", "sp_export", str(export), "--identifier", f"{SESSION_USER}=anonymous_id", env=env)
    assert tracker.returncode == 0, tracker.stdout + tracker.stderr
    tracker = cli("add-source", "sp_export", str(export), "--update", "--identifier", f"{SESSION_USER}=anonymous_id",
                  "--identifier", "contexts.data[*].data.email=email", env=env)  # a mapping fixed after the first try
    assert tracker.returncode == 0, tracker.stdout + tracker.stderr
    run = cli("run", env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    with duckdb.connect(str(database), read_only=True) as conn:
        identifiers = conn.execute("select identifier_type, identifier_value, profile_id from marts.profile_identifiers").fetchall()
        events = conn.execute("select message_id, profile_id, event_name from marts.profile_events "
                              "where source = 'gym_checkins'").fetchall()
        raw = conn.execute("select count(*) from raw.gym_checkins").fetchone()[0]
        tracker_events = conn.execute("select message_type, count(*) from marts.profile_events "
                                      "where source = 'sp_export' group by 1").fetchall()
        pages_viewed = dict(conn.execute("select profile_id, pages_viewed from marts.profile_traits").fetchall())
    return {"scaffolded": scaffolded.stdout, "tracker": tracker.stdout, "tracker_events": dict(tracker_events),
            "pages_viewed": pages_viewed, "project": project, "landing": landing, "raw": raw, "env": env,
            "database": database,
            "identifiers": {(t, v): p for t, v, p in identifiers}, "events": events}


def test_add_source_writes_the_staging_model_and_registers_the_source(added_source):
    staging = added_source["project"] / "models" / "staging" / "gym_checkins"
    assert sorted(p.name for p in staging.iterdir()) == [
        "_gym_checkins__models.yml", "_gym_checkins__sources.yml", "stg_gym_checkins__events.sql"]
    assert "Member Email → email, Mobile → phone, member_id → user_id" in added_source["scaffolded"]
    assert (added_source["landing"] / "gym_checkins" / "gym_checkins.csv").exists()


def test_a_new_csv_lands_and_its_identifiers_join_the_graph(added_source):
    identifiers = added_source["identifiers"]
    assert added_source["raw"] == 3
    assert len(added_source["events"]) == 3 and all(profile for _, profile, _ in added_source["events"])
    # a new person from the gym only
    zoe = identifiers[("user_id", "gym-778")]
    assert identifiers[("email", "zoe.kim@example.org")] == zoe == identifiers[("phone", "+14155550199")]
    # people already there: merged on the e-mail (any case) and on the phone (as typed)
    dana, ravi = identifiers[("user_id", "amp-user-dana")], identifiers[("user_id", "amp-user-ravi")]
    profile_of_event = {profile for _, profile, _ in added_source["events"]}
    assert {dana, ravi, zoe} == profile_of_event


def test_a_tracker_export_with_identifiers_in_json_cells_joins_the_graph_with_its_page_views(added_source):
    """add-source on a Snowplow-like CSV export (issue 29): the cookie id inside a JSON cell's array,
    the e-mail in the contexts envelope, page views as `page` messages, the sample copied outside
    the repository only."""
    identifiers = added_source["identifiers"]
    person = identifiers[("anonymous_id", "cookie-0")]
    assert identifiers[("user_id", "u-2")] == person == identifiers[("email", "person0@example.com")]
    assert identifiers[("anonymous_id", "cookie-2")] == identifiers[("user_id", "u-1")]
    assert added_source["tracker_events"] == {"page": 2, "track": 6}
    assert added_source["pages_viewed"][person] == 2
    assert "event name field: event_name" in added_source["tracker"]
    assert (added_source["landing"] / "sp_export" / "sp_export.csv").exists()


# ---------------------------------------------------------------------------------------------
# lookup and explain: hostile input, nothing in dbt's log, a run holding the file, speed
# ---------------------------------------------------------------------------------------------

HOSTILE_VALUES = [
    "'", "''", "\\'", "'; drop table marts.profiles; --", "x' or '1'='1", "$1", "?", "%", "_", "%@%", "\\",
    "\\\\'", '"', "`", ";", "x" * 100_000, "é'Ω💥", "line\nbreak", "\r\n", "\t",
    "' union select email, email, profile_id from marts.profiles --",
    "email' or 1=1) union all select email, email, email from marts.profiles --",
    "x') ; copy (select * from marts.profiles) to 'leak.csv'; --",
]
KNOWN_EMAIL = "dana.argelies@example.com"


def warehouse_state(database: Path) -> dict:
    """Every schema's tables with their row counts, and the files beside the warehouse (but the
    writer lock's, which is the locking protocol's own)."""
    with duckdb.connect(str(database), read_only=True) as conn:
        tables = conn.execute("select table_schema, table_name from information_schema.tables order by all").fetchall()
        counts = {f"{s}.{t}": conn.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in tables}
    files = {str(p.relative_to(database.parent)): p.stat().st_size for p in database.parent.rglob("*")
             if p.is_file() and p.suffix != ".lock"}
    return {"tables": counts, "files": files,
            "project": sorted(p.name for p in settings.PROJECT_ROOT.iterdir()),
            "dbt_project": sorted(p.name for p in settings.DBT_PROJECT_DIR.iterdir())}


def in_process(*args: str, capsys) -> tuple[int, str, str]:
    """The command as main() runs it: any exception (a traceback on the command line) fails the test."""
    from orchestration.cli.main import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lookup_and_explain_take_hostile_input_as_data_and_change_nothing(sample_runs: SampleRuns, capsys):
    before = warehouse_state(sample_runs.database)
    with environment(DUCKDB_PATH=sample_runs.database, LANDING_DIR=sample_runs.landing):
        for value in [*HOSTILE_VALUES, "a\x00b"]:  # (a NUL cannot be a command-line argument: main() takes it)
            code, out, err = in_process("lookup", value, "--no-graph", capsys=capsys)
            assert (code, out) == (1, "") and "no profile holds " in err, (value[:80], out, err)
            code, out, err = in_process("lookup", KNOWN_EMAIL, "--type", value, "--no-graph", capsys=capsys)
            assert (code, out) == (1, "") and err.startswith("ERROR: unknown identifier type "), (value[:80], err)
            assert "example.com" not in err  # no e-mail of the marts in an error
            for args in ([value], [f"email:{value}"], [f"{value}:{value}"], [f"email:{KNOWN_EMAIL}", value],
                         [value, f"email:{KNOWN_EMAIL}"]):
                code, out, err = in_process("explain", *args, capsys=capsys)
                assert (code, out) == (1, "") and err.startswith("ERROR: no such identifier"), (value[:80], err)
    # the command line itself: a clean error and exit code 1, never a traceback
    env = sample_env(sample_runs)
    for args in (["lookup", "'; drop table marts.profiles; --", "--no-graph"],
                 ["lookup", KNOWN_EMAIL, "--no-graph", "--type", "email' or 1=1) union all select email, email, "
                  "email from marts.profiles --"],
                 ["explain", f"email:{KNOWN_EMAIL}", "anonymous_id:x') ; drop table marts.profiles; --"]):
        result = cli(*args, env=env)
        assert result.returncode == 1 and result.stdout == "", result.stderr
        assert result.stderr.startswith("ERROR: ") and "Traceback" not in result.stderr, result.stderr
    assert warehouse_state(sample_runs.database) == before


def test_identifiers_landed_with_quotes_are_looked_up_and_explained_never_run(added_source):
    env, database = added_source["env"], added_source["database"]
    before = warehouse_state(database)
    crafted = cli("lookup", CRAFTED_ANON, "--no-graph", env=env)
    assert crafted.returncode == 0, crafted.stderr
    assert f"(found by anonymous_id:{CRAFTED_ANON})" in crafted.stdout and OBRIEN in crafted.stdout
    # two people: the crafted value goes into the queries of what kept them apart
    apart = cli("explain", f"anonymous_id:{CRAFTED_ANON}", "email:dana.argelies@example.com", env=env)
    assert apart.returncode == 0, apart.stderr
    assert apart.stdout.startswith(f"anonymous_id:{CRAFTED_ANON} is in prof_") and "not one person." in apart.stdout
    assert warehouse_state(database) == before  # (explain ran the crafted value: it made a table)
    # an e-mail with an apostrophe, typed or bare, as sent or normalised
    for args in ([f"email:{OBRIEN}"], ["O'Brien@Example.com"], [OBRIEN, "user_id:hostile-user-1"]):
        result = cli("explain", *args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert f"email:{OBRIEN}" in result.stdout, result.stdout
    one = cli("explain", OBRIEN, CRAFTED_ANON, env=env)
    assert one.returncode == 0 and f"email:{OBRIEN} and anonymous_id:{CRAFTED_ANON} are one person" in one.stdout
    for value in ("pct%_und\\back'slash\"dq", "é'Ω💥 $1 ?", "ünï'code@example.com"):
        result = cli("lookup", value, "--no-graph", env=env)
        assert result.returncode == 0 and "found by" in result.stdout, (value, result.stderr)
    for near_miss in ("pct_%und", "%", "_", "é'Ω💥 $2 ?"):  # LIKE wildcards and parameters are plain text
        assert cli("lookup", near_miss, "--no-graph", env=env).returncode == 1
    assert warehouse_state(database) == before
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("select count(*) from information_schema.tables where table_name = 'pwned'").fetchone()[0] == 0


def dbt_log() -> Path:
    return settings.DBT_PROJECT_DIR / "logs" / "dbt.log"


def test_lookup_and_explain_leave_nothing_in_dbts_log_and_answer_in_about_a_second(sample_runs: SampleRuns, tmp_path):
    """No dbt process: dbt wrote a run-operation's arguments (an e-mail) into logs/dbt.log. Warm
    timings (the second of each) include Python's start-up."""
    import time

    env = sample_env(sample_runs)
    log = dbt_log()
    offset = log.stat().st_size if log.exists() else 0
    seconds = {}
    for name, args in {"lookup": ["lookup", "Dana.Argelies@EXAMPLE.com", "--graph-dir", str(tmp_path)],
                       "explain": ["explain", "phone:(415) 555-0101", "user_id:amp-user-dana"]}.items():
        for attempt in ("cold", "warm"):
            started = time.monotonic()
            result = cli(*args, env=env)
            seconds[f"{name} {attempt}"] = round(time.monotonic() - started, 2)
            assert result.returncode == 0, result.stderr
    print(f"lookup/explain seconds: {seconds}")
    written = log.read_bytes()[offset:].decode(errors="replace") if log.exists() else ""
    for value in ("Dana.Argelies@EXAMPLE.com", "dana.argelies", "(415) 555-0101", "amp-user-dana"):
        assert value not in written
    assert seconds["lookup warm"] < 5 and seconds["explain warm"] < 5, seconds  # about 1 s on a busy machine


def test_lookup_writes_its_graph_owner_only_beside_the_warehouse(sample_runs: SampleRuns):
    import stat

    result = cli("lookup", "(415) 555-0103", env=sample_env(sample_runs))
    assert result.returncode == 0, result.stderr
    folder = sample_runs.database.parent / "private" / "lookups"
    profile_id = sample_runs.after_late_file.profile_of("phone", "+14155550103")
    assert f"graph: {folder / profile_id}.dot" in result.stdout
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 == stat.S_IMODE(folder.parent.stat().st_mode)
    assert stat.S_IMODE((folder / f"{profile_id}.dot").stat().st_mode) == 0o600
    assert "data/lookups" not in result.stdout  # (the old default, inside the project)


def test_lookup_during_a_run_waits_for_the_run(sample_runs: SampleRuns):
    """A run holds the writer lock and the file; the lookup says it waits, then answers."""
    from orchestration.core.locking import writer_lock

    with writer_lock(sample_runs.database):
        writer = duckdb.connect(str(sample_runs.database))  # as a run's step has it open
        try:
            lookup = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "lookup", "(415) 555-0103",
                                       "--no-graph"], cwd=settings.PROJECT_ROOT, env=sample_env(sample_runs),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            said = lookup.stderr.readline()  # blocks until it says something, or ends
            assert "waiting for it to finish" in said and lookup.poll() is None, said + lookup.stderr.read()
        finally:
            writer.close()
    out, err = lookup.communicate(timeout=300)
    assert lookup.returncode == 0, err
    assert "(found by phone:+14155550103)" in out


def test_lookup_and_explain_normalise_as_the_dbt_macros(sample_runs: SampleRuns):
    """The analysts' dbt macros (normalize_identifier, find_identifiers_sql) and the Python path
    give the same answers on a corpus: one dbt compile renders the macros' SQL (the corpus values
    stay out of dbt's arguments), DuckDB runs it with the values bound."""
    from orchestration.people.lookup import normalized, resolve

    rules = settings.identity_rules()
    types = list(rules["identifier_types"])
    split = "-- next query --"
    inline = f"\n{split}\n".join(
        ["select t, v, {{ normalize_identifier('t', 'v') }} as n from corpus",
         "select v, {{ trim_text('v') }} = trim(v) as same from corpus",
         "{{ find_identifiers_sql('__value__') }}",
         *[f"{{{{ find_identifiers_sql('__value__', '{kind}') }}}}" for kind in types]])
    compiled = subprocess.run([settings.DBT_EXECUTABLE, "--quiet", "compile", "--inline", inline,
                               "--profiles-dir", str(settings.DBT_PROFILES_DIR)], cwd=settings.DBT_PROJECT_DIR,
                              env=sample_env(sample_runs), capture_output=True, text=True, timeout=600)
    assert compiled.returncode == 0, compiled.stdout[-3000:] + compiled.stderr[-3000:]
    normalize_sql, trim_sql, *finders = [part.strip() for part in compiled.stdout.split(split)]
    finders = [sql.replace("'__value__'", "$value::varchar") for sql in finders]
    corpus = [
        "(415) 555-0103", "415.555.0103", "+1 415 555 0103", "001 415 555 0103", "011 44 20 7946 0958",
        "0415 555 0103", "1-415-555-0103", "+44 (20) 7946-0958 ext. 12", "415-555-0103 x99", "555-0103", "+",
        "  Dana.Argelies@EXAMPLE.com  ", "dana.argelies@example.com", "O'Brien@Example.com", "amp-user-dana",
        " amp-web-ravi\t", "AMP-USER-DANA", "", " ", "null", "É'Ω💥 ÄB", "line\nbreak", "%", "_", "\\", "$1",
        "'; drop table marts.profiles; --", "x" * 5_000, "\u00a0nbsp\u3000", "~", "a ", "\t",
    ]
    with duckdb.connect() as memory:
        memory.execute("create table corpus (t varchar, v varchar)")
        memory.executemany("insert into corpus values (?, ?)", [[t, v] for t in types for v in corpus])
        from_dbt = {(t, v): n for t, v, n in memory.execute(normalize_sql).fetchall()}
        from_python = {(t, v): n for v in corpus for t, n in normalized(memory, v, rules).items()}
        # trim_text skips trim() only where there is nothing to trim, Unicode spaces included
        assert [v for v, same in memory.execute(trim_sql).fetchall() if not same] == []
    assert from_python == from_dbt
    with duckdb.connect(str(sample_runs.database), read_only=True) as conn:
        for value in corpus:
            for kind, sql in zip([None, *types], finders):
                ours = resolve(conn, value, kind, rules)
                theirs = [dict(zip(["identifier_type", "identifier_value", "profile_id"], row))
                          for row in conn.execute(sql, {"value": value}).fetchall()]
                assert ours == theirs, (kind, value[:80])
        # the corpus finds people (the comparison is not between two empty answers)
        assert resolve(conn, "415.555.0103", None, rules) and resolve(conn, "O'Brien@Example.com", "email", rules) == []


# ---------------------------------------------------------------------------------------------
# One way to name an identifier; never None; why junk kept two people apart (on the sample warehouse)
# ---------------------------------------------------------------------------------------------


def test_lookup_and_explain_take_the_same_forms(sample_runs: SampleRuns, capsys):
    profile_id = sample_runs.after_late_file.profile_of("email", KNOWN_EMAIL)
    with environment(DUCKDB_PATH=sample_runs.database, LANDING_DIR=sample_runs.landing):
        for form in (f"email:{KNOWN_EMAIL}", KNOWN_EMAIL, f"'{KNOWN_EMAIL}'", '"Dana.Argelies@Example.com"',
                     f"email:'{KNOWN_EMAIL}'", "user_id:amp-user-dana", "amp-user-dana"):
            code, out, err = in_process("lookup", form, "--no-graph", capsys=capsys)
            assert code == 0 and out.startswith(f"profile {profile_id}  (found by "), (form, err)
            code, out, err = in_process("explain", form, capsys=capsys)
            assert code == 0 and out.startswith(f"profile {profile_id} ("), (form, err)


def junk_device(database: Path) -> tuple[str, str, list[str], str]:
    """A junk anonymous id of the sample seen with at least 3 user ids: its value, its profile, the
    user ids it was seen with but its first and last neighbour (which the old explain matched), and
    the expected reason."""
    with duckdb.connect(str(database), read_only=True) as conn:
        value, profile_id, count, limit, first, last = conn.execute(
            "select identifier_value, profile_id, distinct_neighbours, max_distinct_neighbours, first_neighbour, "
            "last_neighbour from marts.junk_identifiers where identifier_type = 'anonymous_id' "
            "and neighbour_type = 'user_id' and distinct_neighbours >= 3 order by identifier_value limit 1").fetchone()
        users = [row[0] for row in conn.execute(
            "select distinct users.identifier_value from intermediate.int_identifiers as device "
            "join intermediate.int_identifiers as users on users.message_id = device.message_id "
            "and users.identifier_type = 'user_id' where device.identifier_type = 'anonymous_id' "
            "and device.identifier_value = ? order by 1", [value]).fetchall()]
    middle = [user for user in users if user not in (first, last)]
    return value, profile_id, middle, f"anonymous_id:{value} is junk: seen with {count} user ids (limit {limit})"


def test_explain_says_which_identifier_is_junk_and_why(sample_runs: SampleRuns, capsys):
    value, _, middle, reason = junk_device(sample_runs.database)
    assert len(middle) >= 2
    with environment(DUCKDB_PATH=sample_runs.database, LANDING_DIR=sample_runs.landing):
        for args in ([f"user_id:{middle[0]}", f"user_id:{middle[1]}"], [value, middle[0]]):
            code, out, err = in_process("explain", *args, capsys=capsys)
            assert code == 0 and "not one person." in out.splitlines()[0], err
            assert f"  {reason}, so it links no one (e.g. message " in out, out


def test_lookup_of_a_junk_identifier_says_never_not_none(sample_runs: SampleRuns, capsys):
    value, profile_id, _, reason = junk_device(sample_runs.database)
    with environment(DUCKDB_PATH=sample_runs.database, LANDING_DIR=sample_runs.landing):
        code, out, err = in_process("lookup", value, "--no-graph", capsys=capsys)
    assert code == 0, err
    assert f"profile {profile_id}" in out and reason in out
    # its messages are in its users' profiles: its own has none, and no first or last time
    with duckdb.connect(str(sample_runs.database), read_only=True) as conn:
        assert conn.execute("select first_seen_at from marts.profiles where profile_id = ?", [profile_id]).fetchone() == (None,)
    assert "| first seen never | last seen never" in out and "None" not in out


# ---------------------------------------------------------------------------------------------
# Definitions checked against the sample's landed events, before the build, on the command line
# ---------------------------------------------------------------------------------------------

WRONG_TRAITS = """
      - name: misspelt_revenue
        type: sum
        event: Order Completed
        property: revenu
      - name: plan_total
        type: sum
        event: Signed Up
        property: plan
"""


def test_definitions_wrong_for_the_landed_data_stop_the_run_before_the_build(sample_runs: SampleRuns, tmp_path):
    """Before: `sum` of `revenu` built, null for everyone, without a word; `sum` of the text property
    `plan` failed in dbt with `Could not convert string 'team' to DOUBLE` in traits__commerce, as the
    last line of a long traceback."""
    project = tmp_path / "dbt_project"
    copy_dbt_project(project)
    traits = project / "definitions" / "traits.yml"
    text = traits.read_text()
    anchor = "        description: Every product ever added to the cart.\n"
    assert anchor in text
    traits.write_text(text.replace(anchor, anchor + WRONG_TRAITS.lstrip("\n")))
    line = traits.read_text().splitlines().index("      - name: plan_total") + 1
    env = sample_env(sample_runs, DBT_PROJECT_DIR=str(project))
    before = warehouse_state(sample_runs.database)
    result = cli("run", env=env)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    shown = str(traits)
    assert (f"WARNING: {shown}:{line - 4}: trait 'misspelt_revenue' (group 'commerce'): property 'revenu' never seen "
            "in the landed 'Order Completed' events (closest seen: 'revenue')") in result.stderr
    assert (f"ERROR: {shown}:{line}: trait 'plan_total' (group 'commerce'): property 'plan' is aggregated as a "
            "number, but none of its ") in result.stderr
    assert "team" not in result.stderr  # (no landed value in the message)
    assert warehouse_state(sample_runs.database) == before  # stopped before anything ran
    debug = cli("run", "--debug", env=env)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
