"""The deletion oracle: erasing people leaves the warehouse equal, row by row, to one built from the
same landing files without their lines.

Generated people (the generator's truth says which messages, identifiers and contact rows are
whose) are built into a warehouse; 20 are drawn at random, some merged across devices, some in the
contact list, and each is deleted by a request naming one of their identifiers, in the next run. A
second warehouse is built from a copy of the landing folder where those people's lines are blank
and their contact rows emptied (a contact row's number is its key, so the row stays, with no
values). Every table of both is compared, but for the privacy bookkeeping, the record of files
loaded (their content differs), wall-clock columns and the emptied contact rows' rejection in the
second warehouse.

People are drawn among those the first build resolved whole (every identifier of theirs in one
profile: a device a person never signed in on is, to the warehouse, someone else) and whose lines
carry only their own identifiers (a household device shared by two people, a client bug's
anonymous id or a store's placeholder e-mail belong to no one person, and the warehouse cannot tell
whose a line carrying only such an identifier is).
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from orchestration.identity.generator import write_landing
from orchestration.location.runner import run_build_warehouse
from tests.conftest import WAREHOUSE_FILE_NAME, environment

PEOPLE, SEED, DRAWN = 400, 41, 20
# Columns that say when a row was written, or which load (a file's content hash) brought it.
WALL_CLOCK_COLUMNS = {"load_id", "loaded_at", "built_at", "updated_at", "changed_at", "assigned_at",
                      "components_built_at", "copies_loaded_until", "rejected_at", "exported_at", "as_of", "folder",
                      "applied_at", "staged_at"}
# Per table, what is compared instead of the whole row: a file's record (its content differs: the
# person's lines are blank), the latest export of each audience (the erased warehouse exported
# twice), a profile's change detector without its hash (it hashes wall-clock columns), and the
# state of the identifier summaries' last build without how many rows they read (the erased warehouse
# read them before the delete; its next build summarises every identifier again, tests/e2e/test_privacy.py).
COMPARED_COLUMNS = {
    "raw.loaded_files": "file_path, file_kind, lines_total + blank_lines",
    "exports.audience_exports": "audience, arg_max(members, exported_at)",
    "intermediate.int_profile_changes": "profile_id",
    "intermediate.int_identity_conflicts__counted": "rules_fingerprint",
    "intermediate.int_identity_nodes__counted": "rules_fingerprint",
}
QUOTED = re.compile(r'"([^"\\]{1,320})"')


@dataclass
class Oracle:
    erased: Path  # the warehouse where the people were deleted
    rebuilt: Path  # the warehouse built without their lines
    exports: Path
    drawn: dict[str, tuple[str, str]]  # person → the identifier the request named
    identifiers: dict[str, set[tuple[str, str]]]
    emptied_rows: set[int]
    outcomes: list


def _truth(landing: Path):
    identifiers: dict[str, set[tuple[str, str]]] = defaultdict(set)
    shared: set[str] = set()
    with (landing / "truth" / f"identifiers-{SEED}.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["kind"] == "personal":
                identifiers[row["person_id"]].add((row["identifier_type"], row["identifier_value"]))
            else:
                shared.add(row["identifier_value"])
    with (landing / "truth" / f"messages-{SEED}.csv").open() as handle:
        person_of_message = {row["message_id"]: row["person_id"] for row in csv.DictReader(handle)}
    with (landing / "truth" / f"contacts-{SEED}.csv").open() as handle:
        contact_rows: dict[str, list[int]] = defaultdict(list)
        for row in csv.DictReader(handle):
            contact_rows[row["person_id"]].append(int(row["row_number"]))
    return identifiers, shared, person_of_message, contact_rows


def _line_values(line: str) -> set[str]:
    """Every quoted string of a line (a malformed line is half a message)."""
    return set(QUOTED.findall(line))


def _owner(line: str, person_of_message: dict[str, str], values_of: dict[str, set[str]]) -> str | None:
    """The person a landing line is of: its message's, when it carries one of their identifiers."""
    match = re.search(r'"messageId":"([^"]+)"', line)
    person = person_of_message.get(match.group(1)) if match else None
    if person and _line_values(line) & values_of.get(person, set()):
        return person
    return None


def _draw(landing: Path, rng: random.Random, database: Path):
    identifiers, shared, person_of_message, contact_rows = _truth(landing)
    with duckdb.connect(str(database), read_only=True) as conn:
        profile_of = dict(((t, v), p) for t, v, p in conn.execute(
            "select identifier_type, identifier_value, profile_id from marts.profile_identifiers").fetchall())
    values_of = {person: {value for _, value in ids} for person, ids in identifiers.items()}
    touches_shared: set[str] = set()
    for path in sorted((landing / "events").rglob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                match = re.search(r'"messageId":"([^"]+)"', line)
                person = person_of_message.get(match.group(1)) if match else None
                if person and _line_values(line) & shared:
                    touches_shared.add(person)
    with (landing / "contacts" / "crm_export.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for person, numbers in contact_rows.items():
        if any(rows[n - 1]["email"] in shared for n in numbers):
            touches_shared.add(person)
    resolved_whole = {p for p, ids in identifiers.items() if len({profile_of.get(i) for i in ids}) == 1
                      and None not in {profile_of.get(i) for i in ids}}
    eligible = sorted(p for p in resolved_whole if p not in touches_shared)
    merged = [p for p in eligible if sum(t == "anonymous_id" for t, _ in identifiers[p]) >= 2
              and any(t == "user_id" for t, _ in identifiers[p])]
    listed = [p for p in eligible if p in contact_rows]
    drawn = set(rng.sample(merged, 6)) | set(rng.sample(listed, 6))
    drawn |= set(rng.sample(sorted(set(eligible) - drawn), DRAWN - len(drawn)))
    return sorted(drawn), identifiers, person_of_message, contact_rows, values_of


def _request_identifier(rng: random.Random, identifiers: set[tuple[str, str]]) -> tuple[str, str]:
    identifier_type, value = rng.choice(sorted(identifiers))
    return identifier_type, (value.upper() if identifier_type == "email" else value)  # as a person types it


def _without(landing: Path, target: Path, drawn: set[str], person_of_message, values_of, contact_rows) -> set[int]:
    """A copy of the landing folder without the drawn people's lines; returns the emptied contact rows."""
    shutil.copytree(landing / "events", target / "events")
    for path in sorted((target / "events").rglob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        kept = ["" if _owner(line, person_of_message, values_of) in drawn else line for line in lines]
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write("\n".join(kept))
    (target / "contacts").mkdir()
    emptied = {n for person in drawn for n in contact_rows.get(person, [])}
    with (landing / "contacts" / "crm_export.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows = [rows[0]] + [["" for _ in row] if number in emptied else row for number, row in enumerate(rows[1:], 1)]
    with (target / "contacts" / "crm_export.csv").open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return emptied


@pytest.fixture(scope="session")
def oracle(tmp_path_factory, dagster_instance) -> Oracle:
    root = tmp_path_factory.mktemp("erasure_oracle")
    landing = root / "landing"
    write_landing(landing, PEOPLE, seed=SEED, files=2)
    erased, rebuilt = root / "erased" / WAREHOUSE_FILE_NAME, root / "rebuilt" / WAREHOUSE_FILE_NAME
    outcomes = []
    with environment(LANDING_DIR=landing, DUCKDB_PATH=erased, EXPORT_DIR=root / "erased_exports",
                     PRIVACY_SALT="oracle-salt"):
        outcomes.append(run_build_warehouse(dagster_instance))
        rng = random.Random(SEED)
        drawn, identifiers, person_of_message, contact_rows, values_of = _draw(landing, rng, erased)
        named = {person: _request_identifier(rng, identifiers[person]) for person in drawn}
        (landing / "privacy").mkdir()
        (landing / "privacy" / "erase.jsonl").write_text("".join(
            json.dumps({"request_id": f"erase-{i}", "action": "delete", "identifier": f"{t}:{v}",
                        "requested_by": "dpo"}) + "\n" for i, (t, v) in enumerate(named.values())))
        outcomes.append(run_build_warehouse(dagster_instance))
    emptied = _without(landing, root / "landing_without", set(drawn), person_of_message, values_of, contact_rows)
    with environment(LANDING_DIR=root / "landing_without", DUCKDB_PATH=rebuilt, EXPORT_DIR=root / "rebuilt_exports",
                     PRIVACY_SALT="oracle-salt"):
        outcomes.append(run_build_warehouse(dagster_instance))
    return Oracle(erased, rebuilt, root / "erased_exports", named, {p: identifiers[p] for p in drawn}, emptied,
                  outcomes)


def _tables(database: Path) -> dict[str, list[tuple]]:
    """Every table but the privacy bookkeeping and the build's own (build_state: code fingerprints and
    the data's version, nothing of a person), without wall-clock columns, rows sorted."""
    tables = {}
    with duckdb.connect(str(database), read_only=True) as conn:
        for schema, table in conn.execute("select table_schema, table_name from information_schema.tables "
                                          "where table_schema not in ('privacy', 'build_state') order by all").fetchall():
            columns = [c for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
                "order by ordinal_position", [schema, table]).fetchall() if c not in WALL_CLOCK_COLUMNS]
            select = COMPARED_COLUMNS.get(f"{schema}.{table}") or ", ".join(f'"{c}"::varchar' for c in columns) or "1"
            group = " group by all" if "arg_max" in select else ""
            rows = conn.execute(f'select {select} from "{schema}"."{table}"{group}').fetchall()
            tables[f"{schema}.{table}"] = sorted(rows, key=lambda row: tuple("" if v is None else str(v) for v in row))
    return tables


def test_both_warehouses_build_and_every_request_completes(oracle: Oracle):
    assert [o.ok for o in oracle.outcomes] == [True, True, True]
    with duckdb.connect(str(oracle.erased), read_only=True) as conn:
        outcomes = conn.execute("select outcome, count(*) from privacy.requests group by 1").fetchall()
        merged_or_listed = conn.execute("select count(*) from privacy.requests where profiles_found >= 1").fetchone()[0]
    assert outcomes == [("completed", DRAWN)] and merged_or_listed == DRAWN
    assert len(oracle.emptied_rows) >= 6  # contact-list people among them
    assert sum(sum(t == "anonymous_id" for t, _ in ids) >= 2 for ids in oracle.identifiers.values()) >= 6


def test_every_table_equals_a_warehouse_built_without_their_lines(oracle: Oracle):
    erased, rebuilt = _tables(oracle.erased), _tables(oracle.rebuilt)
    # The emptied contact rows are rejected (no identity) in the rebuilt warehouse: the erased one has no row.
    rebuilt["raw.rejected_records"] = [row for row in rebuilt["raw.rejected_records"]
                                       if not (row[0] == "contacts/crm_export.csv" and row[3] == "no_identity"
                                               and int(row[1]) - 1 in oracle.emptied_rows)]
    assert sorted(erased) == sorted(rebuilt)
    different = {name: (len(erased[name]), len(rebuilt[name])) for name in erased if erased[name] != rebuilt[name]}
    assert different == {}


def test_nothing_of_them_is_left_in_any_export_file(oracle: Oracle):
    values = {value.lower() for ids in oracle.identifiers.values() for _, value in ids}
    files = list(oracle.exports.rglob("*.csv"))
    assert files
    for path in files:
        with path.open() as handle:
            cells = {cell.lower() for row in csv.reader(handle) for cell in row}
        assert not cells & values, path
