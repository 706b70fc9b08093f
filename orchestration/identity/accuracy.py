"""Identity accuracy against the generator's ground truth, beside the policies of other systems.

Every policy is scored on the same identifiers (those the truth gives to exactly one person and that
the warehouse found linkable): pairwise precision, recall and F1, profiles that hold more than one
person (over-merged), people spread over more than one profile (split), and profiles with two or more
user ids. The ceiling is what is linkable at all: identifiers linked only through messages that
belong to one person.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

KEY = ["identifier_type", "identifier_value"]


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, item):
        parent = self.parent.setdefault(item, item)
        if parent != item:
            parent = self.parent[item] = self.find(parent)
        return parent

    def union(self, a, b) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def load_truth(landing: Path) -> pd.DataFrame:
    """Identifiers that belong to exactly one person (shared and junk ones belong to nobody)."""
    frames = [pd.read_csv(path, dtype=str, keep_default_na=False) for path in sorted((landing / "truth").glob("identifiers-*.csv"))]
    truth = pd.concat(frames, ignore_index=True)
    not_personal = truth[truth.kind != "personal"][KEY].drop_duplicates()
    personal = truth[truth.kind == "personal"].drop_duplicates(KEY + ["person_id"])
    owners = personal.groupby(KEY).person_id.transform("nunique")
    personal = personal[owners == 1]
    personal = personal.merge(not_personal, on=KEY, how="left", indicator=True)
    return personal[personal._merge == "left_only"][KEY + ["person_id"]].reset_index(drop=True)


def message_identifiers(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return conn.execute(
        """
        select message_id, identifier_type, identifier_value, event_at
        from intermediate.int_identifiers where is_linkable order by event_at, message_id
        """
    ).df()


def _partition_from_messages(rows: pd.DataFrame, links, attach_once: frozenset = frozenset()) -> dict:
    """Union the identifiers each message's ``links(identifiers)`` pairs up; return identifier → cluster.

    An identifier of an ``attach_once`` type joins only the first profile it meets (a trait, not a link)."""
    union = UnionFind()
    attached: set = set()
    for _, group in rows.groupby("message_id", sort=False):
        identifiers = list(zip(group.identifier_type, group.identifier_value))
        for identifier in identifiers:
            union.find(identifier)
        for a, b in links(identifiers):
            if b[0] in attach_once:
                if b in attached:
                    continue
                attached.add(b)
            union.union(a, b)
    return {identifier: str(union.find(identifier)) for identifier in union.parent}


def all_identifiers_policy(rows: pd.DataFrame) -> dict:
    """Connected components over every identifier, no protection, no junk detection."""
    return _partition_from_messages(rows, lambda ids: [(ids[0], other) for other in ids[1:]])


def anonymous_and_user_id_policy(rows: pd.DataFrame) -> dict:
    """Classic Segment / dbt-package stitching: anonymous ids and user ids, transitively; e-mails and
    phones are only traits, kept with the first profile they were seen in."""
    def links(ids):
        stitched = [i for i in ids if i[0] in ("anonymous_id", "user_id")]
        traits = [i for i in ids if i[0] not in ("anonymous_id", "user_id")]
        anchor = stitched[0] if stitched else None
        return [(anchor, other) for other in stitched[1:]] + [(anchor, t) for t in traits if anchor]
    return _partition_from_messages(rows, links, attach_once=frozenset({"email", "phone"}))


def user_id_only_policy(rows: pd.DataFrame) -> dict:
    """Amplitude: profiles are user ids; a device belongs to the first user id it is seen with; e-mails
    and phones are user properties; contact rows without a device or user id cannot be ingested."""
    device_owner: dict = {}
    owner_of: dict = {}
    for _, group in rows.groupby("message_id", sort=False):
        ids = list(zip(group.identifier_type, group.identifier_value))
        users = [i for i in ids if i[0] == "user_id"]
        devices = [i for i in ids if i[0] == "anonymous_id"]
        if users:
            profile = users[0]
            for device in devices:
                device_owner.setdefault(device, profile)
        elif devices:
            profile = device_owner.get(devices[0], devices[0])
        else:
            profile = None
        for identifier in ids:
            owner_of.setdefault(identifier, profile or identifier)
        for device in devices:
            owner_of[device] = device_owner.get(device, owner_of[device])
    return {identifier: str(profile) for identifier, profile in owner_of.items()}


def ceiling_policy(rows: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """What is linkable at all: links made only inside messages whose identifiers are one person's."""
    owner = dict(zip(zip(truth.identifier_type, truth.identifier_value), truth.person_id))

    def links(ids):
        by_person = defaultdict(list)
        for identifier in ids:
            if identifier in owner:
                by_person[owner[identifier]].append(identifier)
        return [(group[0], other) for group in by_person.values() for other in group[1:]]
    return _partition_from_messages(rows, links)


@dataclass
class Score:
    policy: str
    precision: float
    recall: float
    f1: float
    over_merged_profiles: int
    split_people: int
    profiles_with_two_user_ids: int


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


def score(policy: str, clusters: dict, truth: pd.DataFrame) -> Score:
    frame = truth.copy()
    keys = list(zip(frame.identifier_type, frame.identifier_value))
    frame["cluster"] = [clusters.get(key, f"alone:{key}") for key in keys]
    true_positive = _pairs(frame.groupby(["cluster", "person_id"]).size())
    predicted = _pairs(frame.groupby("cluster").size())
    actual = _pairs(frame.groupby("person_id").size())
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    user_ids = frame[frame.identifier_type == "user_id"].groupby("cluster").size()
    return Score(
        policy=policy,
        precision=precision,
        recall=recall,
        f1=f1,
        over_merged_profiles=int((frame.groupby("cluster").person_id.nunique() > 1).sum()),
        split_people=int((frame.groupby("person_id").cluster.nunique() > 1).sum()),
        profiles_with_two_user_ids=int((user_ids > 1).sum()),
    )


def evaluate(database: Path, landing: Path) -> list[Score]:
    truth = load_truth(landing)
    with duckdb.connect(str(database), read_only=True) as conn:
        rows = message_identifiers(conn)
        ours = conn.execute("select identifier_type, identifier_value, profile_id from marts.profile_identifiers").df()
    linkable = set(zip(rows.identifier_type, rows.identifier_value))
    truth = truth[[key in linkable for key in zip(truth.identifier_type, truth.identifier_value)]]
    policies = {
        "identity-warehouse": dict(zip(zip(ours.identifier_type, ours.identifier_value), ours.profile_id)),
        "ceiling (linkable at all)": ceiling_policy(rows, truth),
        "user id only (Amplitude)": user_id_only_policy(rows),
        "anonymous id + user id (classic Segment, dbt packages)": anonymous_and_user_id_policy(rows),
        "all identifiers, no protection": all_identifiers_policy(rows),
    }
    return [score(name, clusters, truth) for name, clusters in policies.items()]


def markdown(scores_by_run: dict[str, list[Score]]) -> str:
    lines = [
        "| data | policy | precision | recall | F1 | over-merged profiles | split people | profiles with 2+ user ids |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run, scores in scores_by_run.items():
        for s in scores:
            lines.append(f"| {run} | {s.policy} | {s.precision:.4f} | {s.recall:.4f} | {s.f1:.4f} | "
                         f"{s.over_merged_profiles} | {s.split_people} | {s.profiles_with_two_user_ids} |")
    return "\n".join(lines)
