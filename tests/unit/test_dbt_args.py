import json

from orchestration.dbt_args import dbt_build_args


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
