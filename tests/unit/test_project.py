"""What a dbt build leaves behind in the project's target folder."""

import os

from orchestration.location.project import PARTIAL_PARSE_FILE, keep_build_state


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
    keep_build_state(build, "models-*")
    assert (tmp_path / PARTIAL_PARSE_FILE).read_bytes() == b"parsed for this profile"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["models-abc1234-1", PARTIAL_PARSE_FILE]


def test_a_build_that_wrote_no_partial_parse_file_leaves_the_projects_alone(tmp_path):
    (tmp_path / PARTIAL_PARSE_FILE).write_bytes(b"from dbt parse")
    keep_build_state(make_build_folder(tmp_path, "models-abc1234-1", 100), "models-*")
    assert (tmp_path / PARTIAL_PARSE_FILE).read_bytes() == b"from dbt parse"


def test_only_the_newest_build_folders_are_kept(tmp_path):
    folders = [make_build_folder(tmp_path, f"models-run{index:04d}-x", 1000 + index) for index in range(5)]
    other = make_build_folder(tmp_path, "compiled", 1)  # not a build folder: never removed
    (tmp_path / "manifest.json").write_text("{}")
    keep_build_state(folders[2], "models-*", kept=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "compiled", "manifest.json", "models-run0002-x", "models-run0003-x", "models-run0004-x"]
    assert other.exists()


def test_a_macro_moved_to_another_file_forgets_the_partial_parse(tmp_path):
    """dbt's partial parse loses a macro that moved files (seen when macros/as_of.sql became
    macros/computed/as_of.sql: "'as_of' is undefined"), so the next parse starts from scratch."""
    from orchestration.location.project import PARTIAL_PARSE_FILE, forget_partial_parse_if_macros_moved

    project, target = tmp_path / "project", tmp_path / "project" / "target"
    (project / "macros").mkdir(parents=True)
    (project / "macros" / "as_of.sql").write_text("{% macro as_of() -%} now() {%- endmacro %}\n")
    forget_partial_parse_if_macros_moved(project, target)
    (target / PARTIAL_PARSE_FILE).write_bytes(b"state")

    (project / "macros" / "as_of.sql").write_text("{% macro as_of() -%} current_timestamp {%- endmacro %}\n")
    assert not forget_partial_parse_if_macros_moved(project, target)  # an edit in place: dbt handles it
    assert (target / PARTIAL_PARSE_FILE).exists()

    (project / "macros" / "computed").mkdir()
    (project / "macros" / "as_of.sql").rename(project / "macros" / "computed" / "as_of.sql")
    assert forget_partial_parse_if_macros_moved(project, target)
    assert not (target / PARTIAL_PARSE_FILE).exists()
