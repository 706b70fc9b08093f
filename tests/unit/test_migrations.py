"""Upgrades live in one place: a schema version recorded in the warehouse, one step per version
(orchestration/core/migrations.py), never in a model."""
import re
from pathlib import Path

import duckdb
import pytest

from orchestration.core import migrations
from orchestration.core.migrations import CURRENT_VERSION, UPGRADED_FINGERPRINT, schema_version, upgrade
from orchestration.privacy.requests import create_privacy_tables

ROOT = Path(__file__).resolve().parents[2]

# Tables as earlier versions left them (before the change-tracking columns, the fingerprinted
# privacy log), with a row each.
OLD_SHAPES = [
    "create schema intermediate; create schema marts; create schema staging; create schema traits; create schema privacy; "
    "create schema build_state",
    "create table intermediate.int_identifiers (message_id varchar, identifier_type varchar, identifier_value varchar)",
    "insert into intermediate.int_identifiers values ('m1', 'email', 'a@example.com')",
    "create table intermediate.int_identity_edges (message_id varchar, from_type varchar, from_value varchar)",
    "insert into intermediate.int_identity_edges values ('m1', 'email', 'a@example.com')",
    "create table intermediate.int_identity_components (identifier_type varchar, identifier_value varchar, "
    "derived_profile_id varchar)",
    "insert into intermediate.int_identity_components values ('email', 'a@example.com', 'p1')",
    "create table intermediate.int_message_duplicates (message_id varchar, load_id varchar, line_number bigint)",
    "insert into intermediate.int_message_duplicates values ('m1', 'l1', 1)",
    "create table intermediate.int_profile_ids (identifier_type varchar, identifier_value varchar, profile_id varchar, "
    "profile_first_seen_at timestamp)",
    "insert into intermediate.int_profile_ids values ('email', 'a@example.com', 'p-kept', '2024-01-01')",
    "create table marts.profile_identifiers (identifier_type varchar, identifier_value varchar, profile_id varchar)",
    "insert into marts.profile_identifiers values ('email', 'a@example.com', 'p-kept')",
    "create table marts.profiles (profile_id varchar, email varchar)",
    "insert into marts.profiles values ('p-kept', 'a@example.com')",
    "create table marts.identity_links (message_id varchar, link_status varchar)",
    "insert into marts.identity_links values ('m1', 'linked')",
    "create table marts.profile_trait_sources (profile_id varchar, trait_key varchar)",
    "insert into marts.profile_trait_sources values ('p-kept', 'plan')",
    "create table marts.profile_events (message_id varchar, profile_id varchar)",
    "insert into marts.profile_events values ('m1', 'p-kept')",
    "create table staging.stg_segment__tracks (message_id varchar, loaded_at timestamp)",
    "insert into staging.stg_segment__tracks values ('m1', '2024-01-01')",
    "create table staging.stg_contacts__records (message_id varchar)",
    "insert into staging.stg_contacts__records values ('contact:crm:1')",
    "create table traits.traits__commerce (profile_id varchar, orders_count bigint)",
    "insert into traits.traits__commerce values ('p-kept', 3)",
    "create table build_state.model_builds (model varchar primary key, code_fingerprint varchar not null, "
    "lineage_fingerprint varchar not null, data_version varchar not null, built_at timestamp not null)",
    "insert into build_state.model_builds values ('traits__commerce', 'c', 'l', 'v', '2024-01-01')",
    "create table privacy.requests (request_id varchar primary key, action varchar, source varchar not null, "
    "received_at timestamp not null, processed_at timestamp not null, outcome varchar not null, "
    "profiles_found bigint not null default 0)",
    "insert into privacy.requests (request_id, action, source, received_at, processed_at, outcome) "
    "values ('r1', 'delete', 'file', '2024-01-01', '2024-01-01', 'completed')",
]
# What each step adds (or keeps) in the old tables: the current shape the models read.
CURRENT_COLUMNS = {
    "intermediate.int_identifiers": {"rules_fingerprint", "loaded_at", "message_type", "built_at"},
    "intermediate.int_identity_edges": {"rules_fingerprint", "built_at"},
    "intermediate.int_identity_components": {"graph_component_key", "first_seen_at", "message_count", "is_junk",
                                             "rules_fingerprint", "built_at"},
    "intermediate.int_message_duplicates": {"copies_loaded_until"},
    "intermediate.int_profile_ids": {"is_junk", "changed_at", "components_built_at"},
    "marts.profiles": {"updated_at"},
    "marts.profile_identifiers": {"updated_at"},
    "build_state.model_builds": {"as_of"},  # unknown: the next build with nothing new builds what reads the clock
    "marts.identity_links": {"updated_at"},
    "marts.profile_trait_sources": {"updated_at"},
    "marts.profile_events": {"loaded_at", "updated_at", "event_at_status"},
    "staging.stg_segment__tracks": {"event_at_status"},
    "traits.traits__commerce": {"as_of", "updated_at", "rules_fingerprint"},
    "privacy.requests": {"fingerprint"},
}


def _columns(conn, relation: str) -> set[str]:
    schema, table = relation.split(".")
    return {name for (name,) in conn.execute(
        "select column_name from duckdb_columns() where schema_name = ? and table_name = ?", [schema, table]).fetchall()}


def _versions(conn) -> list[tuple[int, str]]:
    return conn.execute("select version, description from meta.schema_version order by version").fetchall()


def _everything(conn) -> dict[str, list]:
    tables = conn.execute("select schema_name, table_name from duckdb_tables() order by all").fetchall()
    return {f"{s}.{t}": sorted(map(str, conn.execute(f'select * from "{s}"."{t}"').fetchall())) for s, t in tables}


@pytest.fixture
def old_warehouse(tmp_path):
    conn = duckdb.connect(str(tmp_path / "old.duckdb"))
    for statement in OLD_SHAPES:
        conn.execute(statement)
    yield conn
    conn.close()


def test_a_fresh_warehouse_gets_the_current_version_directly(tmp_path):
    with duckdb.connect(str(tmp_path / "fresh.duckdb")) as conn:
        assert schema_version(conn) is None
        assert upgrade(conn) == []
        assert _versions(conn) == [(CURRENT_VERSION, "created at this version")]
        assert schema_version(conn) == CURRENT_VERSION
        assert upgrade(conn) == []
        assert _versions(conn) == [(CURRENT_VERSION, "created at this version")]


def test_an_older_warehouse_gets_every_step_once_and_keeps_its_rows(old_warehouse):
    conn = old_warehouse
    assert schema_version(conn) == 0
    kept_ids = conn.execute("select * from intermediate.int_profile_ids").fetchall()
    messages = {relation: conn.execute(f"select count(*) from {relation}").fetchone()[0] for relation in CURRENT_COLUMNS}

    logged = []
    assert upgrade(conn, logged.append) == [m.version for m in migrations.MIGRATIONS]
    assert len(logged) == len(migrations.MIGRATIONS)
    assert [version for version, _ in _versions(conn)] == list(range(1, CURRENT_VERSION + 1))
    for relation, columns in CURRENT_COLUMNS.items():
        assert columns <= _columns(conn, relation), relation
    # rows kept (but a Segment staging copy of raw, read whole again by its next build)
    for relation, count in messages.items():
        expected = 0 if relation.startswith("staging.stg_segment__") else count
        assert conn.execute(f"select count(*) from {relation}").fetchone()[0] == expected, relation
    assert conn.execute("select count(*) from staging.stg_contacts__records").fetchone()[0] == 1
    # profile ids outlive the upgrade, with their new columns empty ("everything changed" once)
    assert conn.execute("select identifier_type, identifier_value, profile_id, profile_first_seen_at "
                        "from intermediate.int_profile_ids").fetchall() == kept_ids
    assert conn.execute("select changed_at, components_built_at from intermediate.int_profile_ids").fetchall() == [
        (None, None)]
    # the models that recompute under other rules do so once
    for relation in ("intermediate.int_identifiers", "intermediate.int_identity_edges",
                     "intermediate.int_identity_components", "traits.traits__commerce"):
        assert conn.execute(f"select distinct rules_fingerprint from {relation}").fetchall() == [
            (UPGRADED_FINGERPRINT,)], relation
    # the marts' rows count as written before everything that changed since
    for relation in ("marts.profiles", "marts.identity_links", "marts.profile_trait_sources", "marts.profile_events"):
        assert str(conn.execute(f"select distinct updated_at from {relation}").fetchone()[0]) == "1900-01-01 00:00:00"
    # the privacy log: rows kept, fingerprinted, and a request id no longer a primary key
    assert conn.execute("select request_id, outcome, fingerprint from privacy.requests").fetchall() == [
        ("r1", "completed", None)]
    assert conn.execute("select count(*) from duckdb_constraints() where schema_name = 'privacy' "
                        "and table_name = 'requests' and constraint_type = 'PRIMARY KEY'").fetchone()[0] == 0
    assert not conn.execute("select * from duckdb_tables() where table_name like 'requests\\_\\_%' escape '\\'"
                            ).fetchall()

    before = _everything(conn)
    assert upgrade(conn) == []  # running again is a no-op
    assert _everything(conn) == before


def test_a_warehouse_of_the_current_shapes_from_before_the_version_table_keeps_every_value(tmp_path):
    """A warehouse built by the version just before the version table: nothing to change but the
    version recorded."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("create schema marts; create schema staging")
        conn.execute("create table marts.profile_events (message_id varchar, loaded_at timestamp, "
                     "updated_at timestamp, event_at_status varchar)")
        conn.execute("insert into marts.profile_events values ('m1', '2024-05-01', '2024-05-02', 'ok')")
        conn.execute("create table staging.stg_segment__pages (message_id varchar, event_at_status varchar)")
        conn.execute("insert into staging.stg_segment__pages values ('m2', 'ok')")
        create_privacy_tables(conn)
        conn.execute("insert into privacy.requests (request_id, source, received_at, processed_at, outcome, "
                     "fingerprint) values ('r1', 'file', '2024-01-01', '2024-01-01', 'completed', 'f1')")
        before = _everything(conn)
        assert schema_version(conn) == 0
        assert upgrade(conn) == [m.version for m in migrations.MIGRATIONS]
        after = _everything(conn)
        assert after.pop("meta.schema_version")
        assert after == before


def test_a_step_that_fails_leaves_the_warehouse_at_its_version(old_warehouse, monkeypatch):
    def broken(conn):
        conn.execute("alter table marts.profiles add column half_done varchar")
        raise RuntimeError("step failed")
    steps = [migrations.MIGRATIONS[0], migrations.Migration(2, "broken", broken)]
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    monkeypatch.setattr(migrations, "CURRENT_VERSION", 2)
    with pytest.raises(RuntimeError):
        upgrade(old_warehouse)
    assert schema_version(old_warehouse) == 1  # the first step stays applied, the second not at all
    assert "half_done" not in _columns(old_warehouse, "marts.profiles")


def test_versions_are_numbered_one_by_one():
    assert [m.version for m in migrations.MIGRATIONS] == list(range(1, len(migrations.MIGRATIONS) + 1))
    assert CURRENT_VERSION == migrations.MIGRATIONS[-1].version


UPGRADE_CODE = re.compile(r"missing_columns|get_columns_in_relation|\balter\s+table\b", re.IGNORECASE)


def test_no_model_carries_upgrade_code():
    """A model reads its table in the current shape: an older table is upgraded before the build."""
    models = [*ROOT.joinpath("dbt_project", "models").rglob("*.sql"), ROOT / "orchestration" / "computed" / "compiler.py"]
    assert len(models) > 20
    offenders = [str(path.relative_to(ROOT)) for path in models if UPGRADE_CODE.search(path.read_text())]
    assert offenders == []
    macros = ROOT / "dbt_project" / "macros"
    assert not [path for path in macros.rglob("*.sql") if "missing_columns" in path.read_text()]


def test_the_privacy_tables_no_longer_upgrade_themselves():
    source = ROOT.joinpath("orchestration", "privacy", "requests.py").read_text()
    assert "_upgrade" not in source and "requests__old" not in source
