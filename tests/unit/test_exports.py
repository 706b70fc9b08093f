"""Audience exports are written again only when they would change (orchestration/location/assets/exports.py)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from orchestration.computed.schema import Audience
from orchestration.location.assets.exports import export_audience, exports_current, unchanged_export

MARTS = """
create schema marts;
create table marts.profiles (profile_id varchar, user_id varchar, email varchar, phone varchar, updated_at timestamp);
create table marts.audience_members (audience varchar, profile_id varchar, user_id varchar, email varchar, phone varchar);
create table marts.profile_traits (profile_id varchar, revenue double);
create table marts.audience_membership_history (audience varchar, profile_id varchar, change varchar,
                                                changed_at timestamp);
insert into marts.profiles values ('p1', 'u1', 'a@x.com', null, '2024-01-01');
insert into marts.audience_members values ('vip', 'p1', 'u1', 'a@x.com', null);
insert into marts.profile_traits values ('p1', 10);
insert into marts.audience_membership_history values ('vip', 'p1', 'entered', '2024-01-01');
"""


@pytest.fixture
def exported(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute(MARTS)
    audience = Audience(name="vip", description="", include_anonymous=False, condition=None)
    folder = tmp_path / "exports" / "vip"
    export_audience(conn, audience, folder, datetime(2024, 1, 2))
    yield conn, audience, folder
    conn.close()


def test_an_audience_nothing_changed_in_is_not_written_again(exported):
    conn, audience, folder = exported
    assert unchanged_export(conn, audience, folder) == {
        "members": 1, "entered": 0, "exited": 0, "exported_at": datetime(2024, 1, 2),
        "members_csv": str(folder / "members.csv"), "members_parquet": str(folder / "members.parquet")}


@pytest.mark.parametrize("change", [
    "insert into marts.audience_membership_history values ('vip', 'p2', 'entered', '2024-01-03')",
    "update marts.profiles set email = 'b@x.com', updated_at = '2024-01-03'",
    "create schema privacy; create table privacy.requests (processed_at timestamp); "
    "insert into privacy.requests values ('2024-01-03')",
])
def test_a_change_since_the_last_export_writes_it_again(exported, change):
    conn, audience, folder = exported
    conn.execute(change)
    assert unchanged_export(conn, audience, folder) is None


def test_other_columns_missing_files_or_traits_write_it_again(exported):
    conn, audience, folder = exported
    assert unchanged_export(conn, audience, folder, hash_pii=True) is None  # email_sha256, not email
    assert unchanged_export(conn, Audience(name="vip", description="", include_anonymous=False, condition=None, export_traits=("revenue",)),
                            folder) is None
    (folder / "members.parquet").unlink()
    assert unchanged_export(conn, audience, folder) is None


def test_a_build_may_build_nothing_only_while_every_export_is_what_it_would_write(exported, monkeypatch):
    """A build that builds nothing skips the exports after it (Dagster skips what reads an asset the
    run did not write): it may do so only when no export would change (exports_current)."""
    conn, audience, folder = exported
    monkeypatch.setenv("EXPORT_DIR", str(folder.parent))
    with_traits = Audience(name="vip", description="", include_anonymous=False, condition=None,
                           export_traits=("revenue",))
    built = datetime(2024, 1, 1)
    assert exports_current(conn, [audience], built)
    assert exports_current(conn, [with_traits], built) is False  # exported without its traits column
    export_audience(conn, with_traits, folder, datetime(2024, 1, 3))
    assert exports_current(conn, [with_traits], built)  # exported after the models it reads were built
    assert exports_current(conn, [with_traits], datetime(2024, 1, 4)) is False  # built since: traits may differ
    assert exports_current(conn, [with_traits], None) is False  # never built
    monkeypatch.setenv("HASH_PII_IN_EXPORTS", "true")  # switched on: the files hold plain e-mails
    assert exports_current(conn, [with_traits], built) is False
    monkeypatch.delenv("HASH_PII_IN_EXPORTS")
    monkeypatch.setenv("EXPORT_DIR", str(folder.parent.parent / "elsewhere"))  # a new export folder
    assert exports_current(conn, [with_traits], built) is False
