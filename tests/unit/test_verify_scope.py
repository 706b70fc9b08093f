"""What a build tests (the rows it wrote) against what verification tests (every row): the dbt
arguments, the models' watermarks, the verify_warehouse job and `identity-warehouse verify`, without
running dbt (tests/e2e/test_verify.py runs them)."""

from __future__ import annotations

import json

import pytest

from orchestration.cli import main as cli
from orchestration.core import settings
from orchestration.core.dbt_args import check_vars, dbt_build_args, dbt_verify_args
from orchestration.location import runner
from orchestration.location.project import dbt_project
from orchestration.location.runner import VerifyOutcome
from orchestration.location.verify import judge_test_results


def test_verify_runs_every_data_test_over_every_row():
    assert dbt_verify_args() == ["test", "--select", "test_type:data", "--vars", '{"verify_scope": "all"}']


def test_verify_keeps_the_vars_it_is_given_but_not_their_scope():
    args = dbt_verify_args({"as_of": "2024-06-01", "verify_scope": "written"})
    assert json.loads(args[args.index("--vars") + 1]) == {"as_of": "2024-06-01", "verify_scope": "all"}


@pytest.mark.parametrize("full_refresh", [False, True])
def test_a_build_leaves_the_scope_to_dbt(full_refresh):
    """A build tests what it wrote (the var's default); --full-refresh makes the macro read everything."""
    args = dbt_build_args(full_refresh, {"as_of": "2024-06-01"})
    assert "verify_scope" not in " ".join(args)
    assert args[0] == "build" and ("--full-refresh" in args) == full_refresh


@pytest.mark.parametrize("scope", ["everything", "", "all; drop table marts.profiles"])
def test_the_scope_is_written_or_all(scope):
    check_vars({"verify_scope": "written"})
    check_vars({"verify_scope": "all"})
    with pytest.raises(ValueError, match="verify_scope"):
        check_vars({"verify_scope": scope})


def test_failed_and_erred_tests_fail_verification_warnings_do_not():
    verification = judge_test_results({"results": [
        {"unique_id": "test.identity_warehouse.unique_profiles_profile_id.abc", "status": "pass", "failures": 0},
        {"unique_id": "test.identity_warehouse.not_null_profile_events_profile_id.def", "status": "fail",
         "failures": 2},
        {"unique_id": "test.identity_warehouse.no_junk_identifiers_detected", "status": "warn", "failures": 3},
        {"unique_id": "test.identity_warehouse.unique_int_messages_message_id.123", "status": "error",
         "message": "Catalog Error: Table does not exist"},
    ]})
    assert verification.tests_run == 4
    assert verification.failed_tests == ["not_null_profile_events_profile_id: 2 failing rows",
                                         "unique_int_messages_message_id: Catalog Error: Table does not exist"]
    assert verification.warned_tests == ["no_junk_identifiers_detected: 3 failing rows"]
    assert not verification.ok


def _models() -> dict[str, dict]:
    manifest = json.loads(dbt_project.manifest_path.read_text())
    return {node["name"]: node for node in manifest["nodes"].values() if node["resource_type"] == "model"}


# The models whose tests read only the rows a build wrote; every other model is tested whole in
# every build (rebuilt whole, a view, or an incremental model that does not stamp each row it writes).
SCOPED = {
    **{f"stg_segment__{kind}": "built_at"
       for kind in ("tracks", "identifies", "pages", "screens", "aliases", "groups")},
    "int_messages": "staged_at", "int_identifiers": "built_at", "int_identity_conflicts": "built_at",
    "int_identity_nodes": "built_at", "int_identity_edges": "built_at", "int_identity_components": "built_at",
    "profile_identifiers": "updated_at", "profile_events": "updated_at", "identity_links": "updated_at",
    "profiles": "updated_at",
    "profile_trait_sources": "updated_at", "audience_membership_history": "changed_at",
}


def test_the_models_a_build_tests_by_what_it_wrote():
    watermarks = {name: node["config"]["meta"]["build_watermark"] for name, node in _models().items()
                  if node["config"].get("meta", {}).get("build_watermark")}
    assert watermarks == SCOPED


def test_every_watermark_is_the_build_start_stamped_on_every_row_written():
    """The test filter is `<watermark> >= build_timestamp()`: it finds the rows written only if the
    model writes build_timestamp() into that column (staging: in macros/sources/segment.sql)."""
    segment_macro = (settings.DBT_PROJECT_DIR / "macros" / "sources" / "segment.sql").read_text()
    models = _models()
    for name, node in models.items():
        column = SCOPED.get(name)
        if column is None:
            continue
        if name == "int_messages":
            # a view over int_message_copies: the Segment staging models' stamp, or (contact records and
            # registered sources, tables rebuilt whole) the build's start
            copies = models["int_message_copies"]["raw_code"]
            landing_sources = (settings.DBT_PROJECT_DIR / "macros" / "sources" / "landing_sources.sql").read_text()
            assert "built_at as staged_at" in copies and f"{{{{ build_timestamp() }}}} as {column}" in copies
            assert f"{{{{ build_timestamp() }}}} as {column}" in landing_sources
            assert node["config"]["materialized"] == "view" and "int_message_copies" in node["raw_code"]
            continue
        code = segment_macro if "segment_staging(" in node["raw_code"] else node["raw_code"]
        assert f"{{{{ build_timestamp() }}}} as {column}" in code, name
        assert node["config"]["materialized"] == "incremental", name


def test_verify_job_runs_daily_under_the_writer_lock():
    from orchestration.location.definitions import defs

    job = defs.resolve_job_def("verify_warehouse")
    assert job.tags["identity_warehouse/duckdb_writer"] == "true"
    schedule = defs.resolve_schedule_def("daily_verify_warehouse")
    assert schedule.job_name == "verify_warehouse"
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.default_status.value == "RUNNING"
    (node,) = job.nodes
    assert node.definition.pool == "duckdb"


@pytest.fixture
def verify_runs(monkeypatch, tmp_path):
    """The vars ``identity-warehouse verify`` starts the job with, and the outcome it is given."""
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "identity_warehouse.duckdb"))
    started, outcome = [], VerifyOutcome(False, "not-run", ["data test not_null_profile_events_profile_id: 1 "
                                                           "failing rows", "check marts/profile_events:accepted_"
                                                           "messages_reconcile"])

    def run_verify_warehouse(instance=None, dbt_vars=None):
        started.append(dbt_vars)
        return outcome
    monkeypatch.setattr(runner, "run_verify_warehouse", run_verify_warehouse)
    return started, outcome


def test_verify_names_what_failed_and_exits_non_zero(verify_runs, capsys):
    started, _ = verify_runs
    assert cli.main(["verify", "--vars", "{as_of: 2024-06-01}"]) == 1
    assert started == [{"as_of": "2024-06-01"}]
    err = capsys.readouterr().err
    assert "ERROR: data test not_null_profile_events_profile_id: 1 failing rows" in err
    assert "ERROR: check marts/profile_events:accepted_messages_reconcile" in err


def test_verify_that_passes_exits_zero(verify_runs, capsys):
    started, outcome = verify_runs
    outcome.success, outcome.failures = True, []
    assert cli.main(["verify"]) == 0
    assert started == [{}]
    assert "verified" in capsys.readouterr().out


def test_verify_refuses_bad_vars_before_running(verify_runs, capsys):
    started, _ = verify_runs
    assert cli.main(["verify", "--vars", '{"verify_scope": "some"}']) == 1
    assert started == []
