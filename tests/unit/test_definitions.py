"""The code location loads, and reads like the data flow."""

import dagster as dg
import pytest

from orchestration.location.assets.dbt import IdentityWarehouseTranslator
from orchestration.location.jobs import landing_fingerprint, new_landing_files_sensor
from tests.conftest import environment


@pytest.fixture(scope="module")
def defs():
    from orchestration.location.definitions import defs

    return defs


def test_groups_follow_the_data_flow(defs):
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups["raw/tracks"] == "landing"
    assert groups["raw/rejected_records"] == "landing"
    assert groups["staging/stg_segment__tracks"] == "staging"
    assert groups["staging/stg_contacts__records"] == "staging"
    assert groups["intermediate/int_identity_components"] == "identity"
    assert {groups[f"marts/{name}"] for name in ("profiles", "profile_events", "profile_identifiers")} == {"profiles"}
    assert groups["intermediate/int_profile_changes"] == "profiles"  # its meta.dagster.group
    assert groups["traits/traits__commerce"] == groups["audiences/audience__cart_abandoners"] == "traits_and_audiences"
    assert groups["exports/cart_abandoners"] == "exports"


def test_every_audience_has_an_export_downstream_of_its_model(defs):
    graph = defs.resolve_asset_graph()
    export = graph.get(dg.AssetKey(["exports", "high_value_customers"]))
    assert dg.AssetKey(["audiences", "audience__high_value_customers"]) in export.parent_keys


def test_dbt_sources_are_the_raw_tables_the_ingestion_lands(defs):
    graph = defs.resolve_asset_graph()
    staging = graph.get(dg.AssetKey(["staging", "stg_segment__tracks"]))
    assert dg.AssetKey(["raw", "tracks"]) in staging.parent_keys
    ingestion = graph.get(dg.AssetKey(["raw", "tracks"]))
    assert ingestion.is_materializable  # defined by the ingestion asset, not a dbt seed or stub


def test_dbt_tests_and_reconciliations_are_asset_checks(defs):
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"landed_lines_reconcile", "accepted_messages_reconcile", "unique_profiles_profile_id"} <= checks


def test_job_schedule_and_sensor(defs):
    job = defs.resolve_job_def("build_warehouse")
    assert job.tags["identity_warehouse/duckdb_writer"] == "true"
    assert defs.resolve_schedule_def("hourly_build").cron_schedule == "0 * * * *"
    assert defs.resolve_sensor_def("new_landing_files_sensor").job_name == "build_warehouse"


def test_translator_keys():
    translator = IdentityWarehouseTranslator()
    source = {"resource_type": "source", "name": "contacts", "schema": "raw", "fqn": ["identity_warehouse", "contacts", "contacts"]}
    model = {"resource_type": "model", "name": "profiles", "schema": "marts", "fqn": ["identity_warehouse", "marts", "profiles"]}
    assert translator.get_asset_key(source) == dg.AssetKey(["raw", "contacts"])
    assert translator.get_asset_key(model) == dg.AssetKey(["marts", "profiles"])
    assert translator.get_group_name(model) == "profiles"
    between_marts = {"resource_type": "model", "name": "int_profile_changes", "schema": "intermediate",
                     "fqn": ["identity_warehouse", "intermediate", "int_profile_changes"],
                     "meta": {"dagster": {"group": "profiles"}}}
    assert translator.get_group_name(between_marts) == "profiles"
    assert translator.get_group_name({**between_marts, "meta": {}}) == "identity"


def test_sensor_fires_once_per_change_of_the_landing_folder(tmp_path):
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "a.jsonl").write_text('{"type":"track","anonymousId":"a"}\n')
    with environment(LANDING_DIR=tmp_path, DUCKDB_PATH=tmp_path / "not-built-yet.duckdb"):
        first = new_landing_files_sensor(dg.build_sensor_context(cursor=None))
        assert isinstance(first, dg.RunRequest)
        cursor = landing_fingerprint(tmp_path)
        assert first.run_key == cursor
        assert isinstance(new_landing_files_sensor(dg.build_sensor_context(cursor=cursor)), dg.SkipReason)
        (tmp_path / "events" / "b.jsonl").write_text('{"type":"track","anonymousId":"b"}\n')
        again = new_landing_files_sensor(dg.build_sensor_context(cursor=cursor))
        assert isinstance(again, dg.RunRequest) and again.run_key != cursor
        # a file of a registered landing source (the sample registers snowplow) counts too
        (tmp_path / "snowplow").mkdir()
        (tmp_path / "snowplow" / "events.jsonl").write_text('{"event_id":"e1"}\n')
        assert landing_fingerprint(tmp_path) != again.run_key


def test_privacy_requests_run_after_the_marts_and_before_every_export(defs):
    graph = defs.resolve_asset_graph()
    requests = graph.get(dg.AssetKey(["privacy", "requests"]))
    assert requests.group_name == "privacy"
    # after the marts: through the model every dbt build writes (a build with nothing new leaves
    # profile_identifiers as it is, and Dagster skips what depends on an asset a run did not write),
    # which the same step builds with profile_identifiers
    assert requests.parent_keys == {dg.AssetKey(["marts", "audience_membership_history"])}
    dbt_step = graph.get(dg.AssetKey(["marts", "profile_identifiers"])).assets_def
    assert dg.AssetKey(["marts", "audience_membership_history"]) in dbt_step.keys
    for key in graph.get_all_asset_keys():
        if key.path[0] == "exports":
            assert dg.AssetKey(["privacy", "requests"]) in graph.get(key).parent_keys, key


def test_column_metadata_is_reused_only_when_every_asset_was_built_from_the_same_project():
    from orchestration.location.assets.dbt import PROJECT_FINGERPRINT, latest_metadata, reusable_column_metadata

    instance = dg.DagsterInstance.ephemeral()
    profiles, events = dg.AssetKey(["marts", "profiles"]), dg.AssetKey(["marts", "profile_events"])
    schema = dg.TableSchema(columns=[dg.TableColumn("profile_id", "varchar")])

    def materialize(key, **metadata):
        instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata=metadata))

    materialize(profiles, **{PROJECT_FINGERPRINT: "v1", "dagster/column_schema": schema, "profiles": 3})
    materialize(events, **{PROJECT_FINGERPRINT: "v1"})  # lineage could not be built: nothing to carry
    reused = reusable_column_metadata(latest_metadata(instance, {profiles, events}), "v1")
    assert reused == {profiles: {"dagster/column_schema": dg.TableSchemaMetadataValue(schema)}, events: {}}
    assert reusable_column_metadata(latest_metadata(instance, {profiles, events}), "v2") is None  # the project changed
    assert reusable_column_metadata(latest_metadata(instance, {profiles, dg.AssetKey(["marts", "new_model"])}), "v1") is None
    materialize(events)  # built without a recorded version (an earlier release)
    assert reusable_column_metadata(latest_metadata(instance, {profiles, events}), "v1") is None


def test_unit_tests_are_left_out_only_when_every_asset_passed_them_for_this_version():
    from orchestration.location.assets.dbt import UNIT_TESTS_PASSED, latest_metadata, unit_tests_passed

    instance = dg.DagsterInstance.ephemeral()
    profiles, events = dg.AssetKey(["marts", "profiles"]), dg.AssetKey(["marts", "profile_events"])

    def materialize(key, **metadata):
        instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata=metadata))

    assert not unit_tests_passed(latest_metadata(instance, {profiles}), "v1")  # never built
    materialize(profiles, **{UNIT_TESTS_PASSED: "v1"})
    assert unit_tests_passed(latest_metadata(instance, {profiles}), "v1")
    assert not unit_tests_passed(latest_metadata(instance, {profiles}), "v2")  # the project, vars or dbt changed
    assert not unit_tests_passed(latest_metadata(instance, {profiles, events}), "v1")  # one was never built
    materialize(events, **{UNIT_TESTS_PASSED: "v1"})
    assert unit_tests_passed(latest_metadata(instance, {profiles, events}), "v1")
    materialize(events)  # built without a record (by an earlier release)
    assert not unit_tests_passed(latest_metadata(instance, {profiles, events}), "v1")
    assert not unit_tests_passed(latest_metadata(instance, set()), "v1")


def test_the_dbt_version_is_read_from_the_installed_package_not_by_running_dbt():
    from dagster_dbt import DbtCliResource

    from orchestration.core import settings
    from orchestration.location.project import dbt_project, dbt_resource

    asked = DbtCliResource(project_dir=dbt_project, dbt_executable=settings.DBT_EXECUTABLE)._cli_version  # runs dbt
    assert dbt_resource()._cli_version == asked


IMPORT_PROBE = """
import json, os, subprocess, sys, time
started = subprocess.Popen
spawned = []
def recording_popen(*args, **kwargs):
    spawned.append(str(args[0] if args else kwargs.get('args'))[:200])
    return started(*args, **kwargs)
subprocess.Popen = recording_popen
before = dict(os.environ)
clock = time.monotonic()
import orchestration.location.definitions
seconds = time.monotonic() - clock
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps({"changed": changed, "spawned": spawned, "seconds": seconds}))
"""


def test_importing_the_code_location_has_no_side_effects(tmp_path):
    """With the manifest prepared (tests/conftest.py does it first), importing the definitions writes
    no environment variable, starts no process (no `dbt parse`) and writes nothing into dbt's folder."""
    import json
    import os
    import subprocess
    import sys

    from orchestration.core import settings

    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(settings.PROJECT_ROOT),
             "DUCKDB_PATH": str(tmp_path / "w.duckdb")}  # the manifest's database name (its stem) is the tests'
    clean["DUCKDB_PATH"] = os.environ.get("DUCKDB_PATH", clean["DUCKDB_PATH"])
    # what preparing the manifest writes (other runs may write builds' folders meanwhile)
    prepared = [settings.DBT_PROJECT_DIR / "target" / name for name in ("manifest.json", "manifest.fingerprint")]
    prepared += sorted((settings.DBT_PROJECT_DIR / "models" / "computed").rglob("*"))
    before = {p: p.stat().st_mtime for p in prepared if p.is_file()}
    result = subprocess.run([sys.executable, "-c", IMPORT_PROBE], env=clean, cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["changed"] == []
    assert not [command for command in probe["spawned"] if "dbt" in command]  # (a library may ask `file` its platform)
    assert {p: p.stat().st_mtime for p in before} == before
    print(f"import of the code location: {probe['seconds']:.1f} s")
    assert probe["seconds"] < 60  # a few seconds on an idle machine (Dagster and dbt's imports)
