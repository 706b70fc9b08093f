"""The command line's own work, without running the job."""

from __future__ import annotations

import os

import pytest

from orchestration.cli import main as cli
from orchestration.core import settings
from orchestration.location import runner
from orchestration.location.runner import JobOutcome


@pytest.fixture
def job_runs(monkeypatch, tmp_path):
    """The run configurations ``identity-warehouse run`` starts the job with (the job itself not run)."""
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "identity_warehouse.duckdb"))
    started = []

    def run_build_warehouse(instance=None, run_config=None):
        started.append(run_config)
        return JobOutcome(success=False, run_id="not-run")

    monkeypatch.setattr(runner, "run_build_warehouse", run_build_warehouse)
    return started


def test_run_hands_its_vars_to_the_dbt_build_on_duckdb(job_runs):
    """Before: --vars was accepted and ignored on DuckDB (an as_of there silently became now)."""
    cli.main(["run", "--verbose", "--vars", '{"as_of": "2024-06-01"}'])
    assert job_runs == [{"ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": {"as_of": "2024-06-01"}}}}}]


def test_run_takes_vars_as_yaml_as_dbt_does(job_runs):
    cli.main(["run", "--verbose", "--vars", "{as_of: 2024-06-01}"])
    assert job_runs[0]["ops"]["identity_warehouse_dbt_models"]["config"]["dbt_vars"] == {"as_of": "2024-06-01"}


def test_run_without_vars_uses_the_jobs_defaults(job_runs):
    cli.main(["run", "--verbose"])
    assert job_runs == [None]


@pytest.mark.parametrize("text", ['{"as_of": "2024-13-45"}', "{not: [yaml", '["as_of"]',
                                  '{"as_of": "x\' as timestamp); drop table marts.profiles; --"}'])
def test_run_refuses_vars_that_are_not_a_json_object_or_hold_a_bad_as_of(job_runs, capsys, text):
    assert cli.main(["run", "--verbose", "--vars", text]) == 2  # a usage error (was 1, as a failed run)
    assert job_runs == []
    assert capsys.readouterr().err.startswith("ERROR: --vars:")


# ---------------------------------------------------------------------------------------------
# --as-of, on both targets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_of", ["2024-06-01", "2024-06-01T09:30:00"])
def test_as_of_reaches_the_dbt_build_on_duckdb(job_runs, as_of):
    cli.main(["run", "--verbose", "--as-of", as_of])
    assert job_runs == [{"ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": {"as_of": as_of}}}}}]


def test_as_of_joins_the_other_vars(job_runs):
    cli.main(["run", "--verbose", "--as-of", "2024-06-01", "--vars", "{spark_file_format: delta}"])
    assert job_runs[0]["ops"]["identity_warehouse_dbt_models"]["config"]["dbt_vars"] == {
        "as_of": "2024-06-01", "spark_file_format": "delta"}


@pytest.fixture
def spark_runs(monkeypatch, tmp_path):
    """The run configurations ``identity-warehouse run --target spark`` starts the job with, and the
    target the job then builds on (the job itself not run)."""
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "identity_warehouse.duckdb"))
    monkeypatch.setenv("SPARK_WAREHOUSE_DIR", str(tmp_path / "spark"))
    monkeypatch.delenv("WAREHOUSE_TARGET", raising=False)
    started = []

    def run_build_warehouse(instance=None, run_config=None):
        started.append((settings.warehouse_target(), run_config))
        return JobOutcome(success=False, run_id="not-run")

    monkeypatch.setattr(runner, "run_build_warehouse", run_build_warehouse)
    yield started
    os.environ.pop("WAREHOUSE_TARGET", None)  # the command sets it for the job it starts


def test_as_of_reaches_the_dbt_build_on_spark(spark_runs):
    """The same Dagster job, on Spark: --target spark sets WAREHOUSE_TARGET for it."""
    cli.main(["run", "--verbose", "--target", "spark", "--as-of", "2024-06-01"])
    assert spark_runs == [("spark", {"ops": {"identity_warehouse_dbt_models": {"config": {"dbt_vars": {
        "as_of": "2024-06-01"}}}}})]


def test_warehouse_target_picks_the_engine_without_target(spark_runs, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_TARGET", "spark")
    cli.main(["run", "--verbose"])
    assert spark_runs == [("spark", None)]


def test_an_unknown_warehouse_target_is_refused(monkeypatch):
    monkeypatch.setenv("WAREHOUSE_TARGET", "snowflake")
    with pytest.raises(ValueError, match="WAREHOUSE_TARGET: expected one of duckdb, spark, got 'snowflake'"):
        settings.warehouse_target()


@pytest.mark.parametrize("args, message", [
    (["--as-of", "2024-13-01"], "ERROR: --as-of: expected a date or timestamp such as 2024-06-01"),
    (["--as-of", "yesterday"], "ERROR: --as-of: expected a date or timestamp"),
    (["--as-of", "2024-06-01", "--vars", "{as_of: 2024-05-01}"], "ERROR: --as-of 2024-06-01 and --vars as_of "
                                                                 "2024-05-01 disagree: give one"),
])
@pytest.mark.parametrize("target", ["duckdb", "spark"])
def test_a_bad_as_of_is_a_usage_error_on_both_targets(job_runs, spark_runs, capsys, args, message, target):
    assert cli.main(["run", "--target", target, *args]) == 2
    assert job_runs == [] and spark_runs == []
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Errors: a few clear lines, the traceback with --debug
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def failing_run(monkeypatch, tmp_path):
    """``identity-warehouse run`` whose job start raises the error given."""
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "identity_warehouse.duckdb"))

    def with_error(error: Exception):
        def run_build_warehouse(instance=None, run_config=None):
            raise error
        monkeypatch.setattr(runner, "run_build_warehouse", run_build_warehouse)
    return with_error


def test_a_definition_error_is_its_lines_without_a_traceback(failing_run, capsys):
    """Before: the last line of a 30-line Python traceback."""
    from orchestration.computed.landed import DefinitionProblems, Finding

    failing_run(DefinitionProblems([
        Finding("error", "trait 'plan_total' (group 'commerce')", "property 'plan' is aggregated as a number, but ...",
                "dbt_project/definitions/traits.yml", 13),
        Finding("error", "audience 'buyers'", "...", "dbt_project/definitions/audiences.yml", 4)]))
    assert cli.main(["run", "--verbose"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "ERROR: dbt_project/definitions/traits.yml:13: trait 'plan_total' (group 'commerce'): property 'plan' is "
        "aggregated as a number, but ...",
        "ERROR: dbt_project/definitions/audiences.yml:4: audience 'buyers': ..."]


def test_debug_shows_the_traceback(failing_run, capsys):
    from orchestration.computed.schema import DefinitionError

    failing_run(DefinitionError("trait 'x' (group 'g'): unknown trait type 'median'", "traits.yml", 9))
    for args in (["--debug", "run", "--verbose"], ["run", "--verbose", "--debug"]):
        assert cli.main(args) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err
        assert err.rstrip().endswith("ERROR: traits.yml:9: trait 'x' (group 'g'): unknown trait type 'median'")


def test_an_unexpected_error_is_one_line_and_says_how_to_see_more(failing_run, capsys):
    failing_run(RuntimeError("the disk is full\nand more detail"))
    assert cli.main(["run", "--verbose"]) == 1
    assert capsys.readouterr().err.splitlines() == ["ERROR: RuntimeError: the disk is full",
                                                    "(run again with --debug for the traceback)"]


def test_a_missing_warehouse_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "nowhere.duckdb"))
    for args in (["lookup", "dana@example.com", "--no-graph"], ["explain", "email:dana@example.com"], ["compact"]):
        assert cli.main(args) == 1
        err = capsys.readouterr().err
        assert err.splitlines() == [f"ERROR: no warehouse at {tmp_path / 'nowhere.duckdb'}: run `identity-warehouse "
                                    "run` first (or set DUCKDB_PATH)"]
    assert not (tmp_path / "nowhere.duckdb").exists()  # (compact made an empty one)


def test_a_run_names_the_file_that_holds_dbt_s_every_line(monkeypatch, capsys, tmp_path):
    """The console leaves out dbt's line per model and test: it says where they all are."""
    from orchestration.location import project

    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "identity_warehouse.duckdb"))
    folder = tmp_path / "identity_warehouse_dbt_models-abcdef1-0000000"
    folder.mkdir()
    (folder / "dbt.log").write_text("every line\n")
    monkeypatch.setattr(project, "build_folder", lambda run_id: folder if run_id == "abcdef1-run" else None)
    monkeypatch.setattr(runner, "run_build_warehouse",
                        lambda instance=None, run_config=None: JobOutcome(success=False, run_id="abcdef1-run"))
    assert cli.main(["run", "--verbose"]) == 1
    assert f"dbt's full log: {folder / 'dbt.log'}" in capsys.readouterr().err
