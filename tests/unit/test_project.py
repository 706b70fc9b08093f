"""What a dbt build leaves behind in the project's target folder."""

import os
from pathlib import Path

from orchestration.location.project import (
    PARTIAL_PARSE_BY_WAREHOUSE,
    PARTIAL_PARSE_FILE,
    keep_build_state,
    new_build_folder,
)

WAREHOUSE = Path("/data/a/identity_warehouse.duckdb")


def make_build_folder(target, name, mtime, partial_parse=None):
    folder = target / name
    folder.mkdir(parents=True)
    (folder / "run_results.json").write_text("{}")
    if partial_parse is not None:
        (folder / PARTIAL_PARSE_FILE).write_bytes(partial_parse)
    os.utime(folder, (mtime, mtime))
    return folder


def test_the_builds_partial_parse_file_replaces_the_projects(tmp_path):
    (tmp_path / PARTIAL_PARSE_FILE).write_bytes(b"parsed for another profile")
    build = make_build_folder(tmp_path, "models-abc1234-1", 100, partial_parse=b"parsed for this profile")
    keep_build_state(build, "models-*", WAREHOUSE)
    assert (tmp_path / PARTIAL_PARSE_FILE).read_bytes() == b"parsed for this profile"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "models-abc1234-1", PARTIAL_PARSE_FILE, PARTIAL_PARSE_BY_WAREHOUSE]


def test_a_build_that_wrote_no_partial_parse_file_leaves_the_projects_alone(tmp_path):
    (tmp_path / PARTIAL_PARSE_FILE).write_bytes(b"from dbt parse")
    keep_build_state(make_build_folder(tmp_path, "models-abc1234-1", 100), "models-*", WAREHOUSE)
    assert (tmp_path / PARTIAL_PARSE_FILE).read_bytes() == b"from dbt parse"
    assert not (new_build_folder(tmp_path, "models", "def5678", WAREHOUSE) / PARTIAL_PARSE_FILE).exists()


def test_only_the_newest_build_folders_are_kept(tmp_path):
    folders = [make_build_folder(tmp_path, f"models-run{index:04d}-x", 1000 + index) for index in range(5)]
    other = make_build_folder(tmp_path, "compiled", 1)  # not a build folder: never removed
    (tmp_path / "manifest.json").write_text("{}")
    keep_build_state(folders[2], "models-*", WAREHOUSE, kept=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "compiled", "manifest.json", "models-run0002-x", "models-run0003-x", "models-run0004-x"]
    assert other.exists()


def test_warehouses_built_in_turn_from_one_checkout_each_parse_partially(tmp_path):
    """dbt parses the whole project again (6 s) when the partial-parse file was written for another
    profile, i.e. another warehouse file. A build of warehouse A after one of warehouse B starts
    from A's own file, not from the project's, which B's build wrote last."""
    a, b = WAREHOUSE, Path("/data/b/identity_warehouse.duckdb")
    keep_build_state(make_build_folder(tmp_path, "models-aaaaaaa-1", 100, partial_parse=b"for a"), "models-*", a)
    keep_build_state(make_build_folder(tmp_path, "models-bbbbbbb-1", 200, partial_parse=b"for b"), "models-*", b)
    assert (tmp_path / PARTIAL_PARSE_FILE).read_bytes() == b"for b"  # the latest, for a warehouse never built

    folder = new_build_folder(tmp_path, "models", "ccccccc-run-id", a)
    assert folder.parent == tmp_path and folder.name.startswith("models-ccccccc-")  # as build_folder finds it
    assert (folder / PARTIAL_PARSE_FILE).read_bytes() == b"for a"
    assert (new_build_folder(tmp_path, "models", "ddddddd", b) / PARTIAL_PARSE_FILE).read_bytes() == b"for b"
    # Another warehouse file that merely shares A's name and folder name is another warehouse.
    assert not new_build_folder(tmp_path, "models", "eeeeeee", Path("/other") / "a" / a.name).exists()
    assert new_build_folder(tmp_path, "models", "fffffff", a) != folder  # a folder of its own per build


def test_the_partial_parse_files_of_the_most_recently_built_warehouses_are_kept(tmp_path):
    warehouses = [Path(f"/data/{index}/identity_warehouse.duckdb") for index in range(4)]
    for index, warehouse in enumerate(warehouses):
        build = make_build_folder(tmp_path, f"models-{index:07d}-1", 100 + index, partial_parse=b"%d" % index)
        keep_build_state(build, "models-*", warehouse, kept=2)
    assert len(list((tmp_path / PARTIAL_PARSE_BY_WAREHOUSE).iterdir())) == 2
    assert not (new_build_folder(tmp_path, "models", "a", warehouses[1]) / PARTIAL_PARSE_FILE).exists()
    assert (new_build_folder(tmp_path, "models", "b", warehouses[3]) / PARTIAL_PARSE_FILE).read_bytes() == b"3"


def test_a_macro_moved_to_another_file_forgets_the_partial_parse(tmp_path):
    """dbt's partial parse loses a macro that moved files (seen when macros/as_of.sql became
    macros/computed/as_of.sql: "'as_of' is undefined"), so the next parse starts from scratch."""
    from orchestration.location.project import forget_partial_parse_if_macros_moved

    project, target = tmp_path / "project", tmp_path / "project" / "target"
    (project / "macros").mkdir(parents=True)
    (project / "macros" / "as_of.sql").write_text("{% macro as_of() -%} now() {%- endmacro %}\n")
    forget_partial_parse_if_macros_moved(project, target)
    (target / PARTIAL_PARSE_FILE).write_bytes(b"state")

    (project / "macros" / "as_of.sql").write_text("{% macro as_of() -%} current_timestamp {%- endmacro %}\n")
    assert not forget_partial_parse_if_macros_moved(project, target)  # an edit in place: dbt handles it
    assert (target / PARTIAL_PARSE_FILE).exists()

    keep_build_state(make_build_folder(target, "models-abc1234-1", 100, partial_parse=b"state"), "models-*", WAREHOUSE)
    (project / "macros" / "computed").mkdir()
    (project / "macros" / "as_of.sql").rename(project / "macros" / "computed" / "as_of.sql")
    assert forget_partial_parse_if_macros_moved(project, target)
    assert not (target / PARTIAL_PARSE_FILE).exists()
    assert not new_build_folder(target, "models", "def5678", WAREHOUSE).exists()  # nor the warehouse's own
