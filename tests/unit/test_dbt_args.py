import json

from orchestration.core.dbt_args import dbt_build_args, unit_tests_version


def test_plain_build():
    assert dbt_build_args() == ["build"]


def test_full_refresh():
    assert dbt_build_args(full_refresh=True) == ["build", "--full-refresh"]


def test_vars_are_passed_as_json_and_keep_their_types():
    args = dbt_build_args(dbt_vars={"default_phone_country_code": "44", "national_phone_number_length": 10})
    assert args[:2] == ["build", "--vars"]
    assert json.loads(args[2]) == {"default_phone_country_code": "44", "national_phone_number_length": 10}


def test_empty_vars_add_nothing():
    assert dbt_build_args(dbt_vars={}) == ["build"]


def test_unit_tests_can_be_left_out():
    assert dbt_build_args(full_refresh=True, unit_tests=False) == [
        "build", "--full-refresh", "--exclude-resource-type", "unit_test"]


def test_models_left_out_go_in_one_exclude_that_dagster_dbt_reads():
    from dagster_dbt.asset_utils import extract_runtime_selection_from_args

    args = dbt_build_args(exclude=["profiles", "int_identifiers"])
    assert args == ["build", "--exclude", "int_identifiers profiles"]
    assert extract_runtime_selection_from_args(args) == (["build"], [], ["int_identifiers", "profiles"])
    assert dbt_build_args(exclude=[]) == ["build"]


def test_the_unit_tests_version_changes_with_the_project_the_vars_and_the_packages():
    packages = {"dbt-core": "1.11.2", "duckdb": "1.4.3"}
    version = unit_tests_version("project-v1", {"as_of": "2024-06-01"}, packages)
    assert version == unit_tests_version("project-v1", {"as_of": "2024-06-01"}, dict(reversed(packages.items())))
    assert version != unit_tests_version("project-v2", {"as_of": "2024-06-01"}, packages)
    assert version != unit_tests_version("project-v1", {"as_of": "2024-07-01"}, packages)
    assert version != unit_tests_version("project-v1", None, packages)
    assert version != unit_tests_version("project-v1", {"as_of": "2024-06-01"}, {**packages, "duckdb": "1.5.0"})
    assert unit_tests_version("project-v1", None, packages) == unit_tests_version("project-v1", {}, packages)


import pytest  # noqa: E402


@pytest.mark.parametrize("as_of", ["2024-06-01", "2024-06-01T09:30:00", "2024-06-01 09:30:00.123456"])
def test_as_of_takes_a_date_or_a_timestamp(as_of):
    assert json.loads(dbt_build_args(dbt_vars={"as_of": as_of})[2]) == {"as_of": as_of}


@pytest.mark.parametrize("as_of", ["2024-06-01' as timestamp); drop table marts.profiles; --", "2024-13-45",
                                   "yesterday", "2024-06-01\n", "", "2024-06-01T25:00:00"])
def test_as_of_that_is_not_a_timestamp_is_refused_before_dbt_sees_it(as_of):
    with pytest.raises(ValueError, match="as_of must be a date or timestamp"):
        dbt_build_args(dbt_vars={"as_of": as_of})
