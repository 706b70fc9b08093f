"""Materialization metadata people would rather look at than read: what each build did to the
identity graph, the profiles and the audiences, as numbers and small markdown charts.

The builders are pure (rows in, metadata out); ``warehouse_metadata`` reads the rows with one
short-lived read-only connection after the dbt process has released the DuckDB file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import dagster as dg

from orchestration.core.warehouse import table_exists

# Profile sizes (identifiers per profile) are shown in these buckets.
SIZE_BUCKETS = [(1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, None)]
BAR_WIDTH = 30


def bucket_label(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}")


def size_distribution(sizes: Mapping[int, int]) -> list[tuple[str, int]]:
    """Profiles per bucket of identifier count, from {identifier count: profiles}."""
    return [
        (bucket_label(low, high), sum(n for size, n in sizes.items() if size >= low and (high is None or size <= high)))
        for low, high in SIZE_BUCKETS
    ]


def markdown_bars(rows: list[tuple[str, int]], label: str, value: str = "count") -> str:
    """A markdown table with a text bar per row, scaled to the largest value."""
    largest = max((n for _, n in rows), default=0) or 1
    lines = [f"| {label} | {value} | |", "| --- | ---: | --- |"]
    for name, n in rows:
        bar = "█" * max(1 if n else 0, round(BAR_WIDTH * n / largest))
        lines.append(f"| {name} | {n:,} | `{bar}` |")
    return "\n".join(lines)


def identity_metadata(counts: Mapping[str, object]) -> dict[dg.AssetKey, dict]:
    """Metadata per identity asset, from the summary ``counts`` (see ``IDENTITY_SQL``)."""
    by_type = dict(counts["identifiers_by_type"])
    refused = dict(counts["refused_by_reason"])
    junk = dict(counts["junk_by_type"])
    distribution = size_distribution(dict(counts["profile_sizes"]))
    return {
        dg.AssetKey(["marts", "profiles"]): {
            "profiles": counts["profiles"],
            "known_profiles": counts["known_profiles"],
            "anonymous_profiles": counts["profiles"] - counts["known_profiles"],
            "profile_sizes": dg.MetadataValue.md(markdown_bars(distribution, "identifiers per profile", "profiles")),
        },
        dg.AssetKey(["marts", "profile_identifiers"]): {
            "identifiers": sum(by_type.values()),
            "identifiers_by_type": dg.MetadataValue.md(markdown_bars(sorted(by_type.items()), "identifier type")),
            **{f"identifiers/{kind}": n for kind, n in sorted(by_type.items())},
        },
        dg.AssetKey(["marts", "identity_links"]): {
            "links_made": counts["links_made"],
            "links_refused": sum(refused.values()),
            "links_refused_by_reason": dg.MetadataValue.md(markdown_bars(sorted(refused.items()), "refused because")
                                                           if refused else "no link was refused"),
        },
        dg.AssetKey(["marts", "junk_identifiers"]): {
            "junk_identifiers": sum(junk.values()),
            "junk_by_type": dg.MetadataValue.md(markdown_bars(sorted(junk.items()), "identifier type")
                                                if junk else "no junk identifier detected"),
        },
        dg.AssetKey(["marts", "profile_merges"]): {
            "merges": counts["merges"],
        },
    }


def audience_metadata(rows: list[tuple[str, int, int, int]]) -> dict[dg.AssetKey, dict]:
    """Per audience (name, size, entered, exited in this build): metadata of its model, and an
    overview on ``marts.audience_membership_history``."""
    metadata = {
        dg.AssetKey(["audiences", f"audience__{name}"]): {"members": size, "entered": entered, "exited": exited}
        for name, size, entered, exited in rows
    }
    table = ["| audience | members | entered | exited |", "| --- | ---: | ---: | ---: |"]
    table += [f"| {name} | {size:,} | +{entered:,} | -{exited:,} |" for name, size, entered, exited in rows]
    metadata[dg.AssetKey(["marts", "audience_membership_history"])] = {
        "audiences": dg.MetadataValue.md("\n".join(table)),
        "entered": sum(r[2] for r in rows),
        "exited": sum(r[3] for r in rows),
    }
    return metadata


IDENTITY_SQL = {
    "profiles": "select count(*) from marts.profiles",
    "known_profiles": "select count(*) from marts.profiles where not is_anonymous",
    "identifiers_by_type": "select identifier_type, count(*) from marts.profile_identifiers group by 1",
    "profile_sizes": "select identifier_count, count(*) from marts.profiles group by 1",
    "links_made": "select count(*) from marts.identity_links where link_status = 'linked'",
    "refused_by_reason": "select coalesce(refusal_reason, 'merge protection'), count(*) from marts.identity_links "
                         "where link_status = 'refused' group by 1",
    "junk_by_type": "select identifier_type, count(*) from marts.junk_identifiers group by 1",
    "merges": "select count(*) from marts.profile_merges",
}

SCALAR_COUNTS = {"profiles", "known_profiles", "links_made", "merges"}  # the others are (key, count) rows

# Size, and who entered and exited in this build (history rows stamped at or after its start).
AUDIENCE_SQL = """
with sizes as (select audience, count(*) as members from marts.audience_members group by 1),
changes as (
    select audience,
           count(*) filter (where change = 'entered') as entered,
           count(*) filter (where change = 'exited') as exited
    from marts.audience_membership_history
    where changed_at >= ?
    group by 1
)
select audience, coalesce(sizes.members, 0), coalesce(changes.entered, 0), coalesce(changes.exited, 0)
from (select audience from sizes union select audience from changes) as audiences
left join sizes using (audience) left join changes using (audience)
order by audience
"""


def warehouse_metadata(conn, asset_keys: set[dg.AssetKey], build_started_at: datetime) -> dict[dg.AssetKey, dict]:
    """Metadata for those of ``asset_keys`` this module describes, read from the built marts;
    audience changes are those since ``build_started_at`` (UTC)."""
    metadata: dict[dg.AssetKey, dict] = {}
    if table_exists(conn, "marts", "profiles") and asset_keys & set(identity_metadata_keys()):
        counts = {}
        for name, sql in IDENTITY_SQL.items():
            rows = conn.execute(sql).fetchall()
            counts[name] = rows[0][0] if name in SCALAR_COUNTS else rows
        metadata.update(identity_metadata(counts))
    if table_exists(conn, "marts", "audience_membership_history"):
        metadata.update(audience_metadata(conn.execute(AUDIENCE_SQL, [build_started_at]).fetchall()))
    return {key: value for key, value in metadata.items() if key in asset_keys}


def identity_metadata_keys() -> list[dg.AssetKey]:
    return [dg.AssetKey(["marts", name]) for name in
            ("profiles", "profile_identifiers", "identity_links", "junk_identifiers", "profile_merges")]
