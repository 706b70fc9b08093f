"""Audience exports: one asset per audience, writing its members and the changes since the last export."""

import csv
from datetime import datetime, timezone

import dagster as dg

from orchestration.computed.schema import Audience, load_definitions
from orchestration.core import settings
from orchestration.core.warehouse import connect, quote_literal, table_exists
from orchestration.location import build_state
from orchestration.location.assets.landing import DUCKDB_POOL
from orchestration.location.resources import Warehouse

EXPORT_LOG_DDL = """
create schema if not exists exports;
create table if not exists exports.audience_exports (
    audience varchar not null,
    exported_at timestamp not null,
    members bigint not null,
    entered bigint not null,
    exited bigint not null,
    folder varchar not null
)
"""



def personal_columns(table: str, hashed: bool, hashed_in_marts: bool = False) -> str:
    """The e-mail and phone columns, plain or as SHA-256 hex of the normalised value (marts hold
    normalised values: trimmed lower-case e-mails, E.164 phones), hashed once."""
    if hashed_in_marts:
        return f"{table}.email as email_sha256, {table}.phone as phone_sha256"
    if not hashed:
        return f"{table}.email, {table}.phone"
    return f"sha256({table}.email) as email_sha256, sha256({table}.phone) as phone_sha256"


def members_sql(audience: Audience, hash_pii: bool = False) -> str:
    traits = "".join(f", traits.{name}" for name in audience.export_traits)
    return (
        f"select members.profile_id, members.user_id, {personal_columns('members', hash_pii, settings.hash_pii_in_marts())}"
        + traits +
        " from marts.audience_members as members"
        " left join marts.profile_traits as traits on traits.profile_id = members.profile_id"
        f" where members.audience = {quote_literal(audience.name)} order by members.profile_id"
    )


def last_export(conn, audience: Audience, folder, hash_pii: bool = False) -> tuple[datetime, int] | None:
    """When the audience was last exported and how many members it had, when its files are in
    ``folder`` with the columns an export would write now (hashing); None otherwise."""
    if not table_exists(conn, "exports", "audience_exports"):
        return None
    last = conn.execute("select exported_at, members, folder from exports.audience_exports where audience = ? "
                        "order by exported_at desc limit 1", [audience.name]).fetchone()
    members_csv, members_parquet = folder / "members.csv", folder / "members.parquet"
    if last is None or last[2] != str(folder) or not members_csv.is_file() or not members_parquet.is_file():
        return None
    columns = [column[0] for column in conn.execute(f"select * from ({members_sql(audience, hash_pii)}) limit 0").description]
    with members_csv.open(newline="") as handle:
        if next(csv.reader(handle), None) != columns:
            return None
    return last[0], last[1]


def unchanged_export(conn, audience: Audience, folder, hash_pii: bool = False) -> dict | None:
    """The last export of the audience (members and files), when writing it again would give the
    same files: no member entered or left, no profile changed and no privacy request was processed
    since, and the export has the same columns (hashing) and carries no trait (trait values move
    with time). None otherwise, or when there is no such export."""
    last = None if audience.export_traits else last_export(conn, audience, folder, hash_pii)
    if last is None:
        return None
    since = [last[0]]
    changed = conn.execute(
        "select exists (select 1 from marts.audience_membership_history where audience = ? and changed_at > ?)"
        " or exists (select 1 from marts.profiles where updated_at > ?)", [audience.name, *since, *since]).fetchone()[0]
    if changed or (table_exists(conn, "privacy", "requests") and conn.execute(
            "select exists (select 1 from privacy.requests where processed_at > ?)", since).fetchone()[0]):
        return None
    return {"members": last[1], "entered": 0, "exited": 0, "exported_at": last[0],
            "members_csv": str(folder / "members.csv"), "members_parquet": str(folder / "members.parquet")}


def exports_current(conn, audiences: list[Audience], models_built_at: datetime | None) -> bool:
    """Whether every audience's export files are what its export would write now, the models
    unchanged since ``models_built_at`` (a build that builds nothing skips the exports): unchanged
    (``unchanged_export``), or, with traits, exported after that build."""
    folder, hash_pii = settings.export_dir(), settings.hash_pii_in_exports()
    for audience in audiences:
        if not audience.export_traits:
            if unchanged_export(conn, audience, folder / audience.name, hash_pii) is None:
                return False
            continue
        last = last_export(conn, audience, folder / audience.name, hash_pii)
        if last is None or models_built_at is None or last[0] < models_built_at:
            return False
    return True


# The models an export reads (members_sql): their last build is the time its files must be newer than.
EXPORTED_MODELS = ("audience_members", "profile_traits")


def exports_up_to_date(conn) -> bool:
    """``exports_current`` for the project's audiences (a build that would build nothing is one only
    when this holds: the exports after it are skipped)."""
    definitions = load_definitions(settings.DEFINITIONS_DIR / "traits.yml", settings.DEFINITIONS_DIR / "audiences.yml")
    return exports_current(conn, definitions.audiences, build_state.last_built_at(conn, EXPORTED_MODELS))


def export_audience(conn, audience: Audience, folder, exported_at: datetime, hash_pii: bool = False) -> dict:
    """Members as CSV and Parquet, and the entered/exited changes since the previous export as CSV."""
    conn.execute(EXPORT_LOG_DDL)
    folder.mkdir(parents=True, exist_ok=True)
    last = conn.execute(
        "select max(exported_at) from exports.audience_exports where audience = ?", [audience.name]
    ).fetchone()[0]
    members = members_sql(audience, hash_pii)
    conn.execute(f"copy ({members}) to {quote_literal(str(folder / 'members.csv'))} (format csv, header)")
    conn.execute(f"copy ({members}) to {quote_literal(str(folder / 'members.parquet'))} (format parquet)")
    changes = (
        "select history.change, history.changed_at, history.profile_id, profiles.user_id, "
        + personal_columns("profiles", hash_pii, settings.hash_pii_in_marts()) +
        " from marts.audience_membership_history as history"
        " left join marts.profiles as profiles on profiles.profile_id = history.profile_id"
        f" where history.audience = {quote_literal(audience.name)}"
        + (f" and history.changed_at > {quote_literal(last.isoformat(sep=' '))}" if last else "")
        + " order by history.changed_at, history.change, history.profile_id"
    )
    stamp = exported_at.strftime("%Y%m%dT%H%M%S")
    changes_file = folder / "changes" / f"{stamp}.csv"
    changes_file.parent.mkdir(exist_ok=True)
    conn.execute(f"copy ({changes}) to {quote_literal(str(changes_file))} (format csv, header)")
    counts = conn.execute(
        f"select count(*) filter (where change = 'entered'), count(*) filter (where change = 'exited') from ({changes})"
    ).fetchone()
    member_count = conn.execute(f"select count(*) from ({members})").fetchone()[0]
    conn.execute(
        "insert into exports.audience_exports values (?, ?, ?, ?, ?, ?)",
        [audience.name, exported_at, member_count, counts[0], counts[1], str(folder)],
    )
    return {"members": member_count, "entered": counts[0], "exited": counts[1],
            "members_csv": str(folder / "members.csv"), "members_parquet": str(folder / "members.parquet"),
            "changes_csv": str(changes_file)}


def audience_export_asset(audience: Audience) -> dg.AssetsDefinition:
    @dg.asset(
        key=["exports", audience.name],
        group_name="exports",
        description=f"Members of '{audience.name}' ({audience.description}) as CSV and Parquet, and the "
                    "entered/exited changes since the previous export, in EXPORT_DIR/<audience>/.",
        deps=[dg.AssetKey(["audiences", f"audience__{audience.name}"]),
              dg.AssetKey(["marts", "audience_membership_history"]),
              dg.AssetKey(["marts", "audience_members"]),
              dg.AssetKey(["privacy", "requests"])],  # an erased person is in no export
        pool=DUCKDB_POOL,
        kinds={"csv", "parquet"},
    )
    def _export(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        exported_at = datetime.now(timezone.utc).replace(tzinfo=None)
        folder, hash_pii = settings.export_dir() / audience.name, settings.hash_pii_in_exports()
        with connect(warehouse.database) as conn:
            unchanged = unchanged_export(conn, audience, folder, hash_pii)
            result = unchanged or export_audience(conn, audience, folder, exported_at, hash_pii)
        if unchanged:  # a build with nothing new: what time changed left this audience as it was
            context.log.info(f"{audience.name}: {result['members']} members, unchanged since the export of "
                             f"{result['exported_at']:%Y-%m-%d %H:%M:%S}: not written again")
            return dg.MaterializeResult(metadata={
                "dagster/row_count": result["members"], "entered": 0, "exited": 0, "written": False,
                "members_csv": dg.MetadataValue.path(result["members_csv"]),
                "members_parquet": dg.MetadataValue.path(result["members_parquet"])})
        context.log.info(f"{audience.name}: {result['members']} members, +{result['entered']} -{result['exited']}")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": result["members"],
            "written": True,
            "entered": result["entered"],
            "exited": result["exited"],
            "members_csv": dg.MetadataValue.path(result["members_csv"]),
            "members_parquet": dg.MetadataValue.path(result["members_parquet"]),
            "changes_csv": dg.MetadataValue.path(result["changes_csv"]),
        })

    return _export
