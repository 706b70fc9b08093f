"""The identity rules read once (orchestration/identity/rules.py): the same fields as the dbt models
read (macros/identity/rules.sql rendered with Jinja, no dbt), and every Python consumer agreeing."""

import re
import types

import jinja2
import pytest

from orchestration.core import settings
from orchestration.identity.rules import IdentityRules
from orchestration.landing.ingestion import IdentityFields
from orchestration.privacy.screen import contact_fields, message_fields

DBT = settings.DBT_PROJECT_DIR
SHIPPED = settings.identity_rules()
# A project's own types beside the shipped ones: every kind of source, a header to snake_case.
CUSTOM = {"identifier_types": {
    **SHIPPED["identifier_types"],
    "crm_id": {"normalize": "lower", "sources": ["traits.crm_id", "column.crm_id", "column.CRM ID"]},
    "device_id": {"sources": ["context.device.id", "anonymousId"]},
    "work_email": {"normalize": "email", "sources": ["column.Work E-Mail", "context.traits.work_email"]},
}}
RULE_SETS = {"shipped": SHIPPED, "custom": CUSTOM}


class CompilerError(Exception):
    pass


def _raise(message):
    raise CompilerError(message)


ENV = jinja2.Environment(extensions=["jinja2.ext.do"])
RULES_MACROS = ENV.from_string((DBT / "macros/identity/rules.sql").read_text(), globals={
    "json_get_string": lambda expr, path: f"json_extract_string({expr}, '{path}')",
    "exceptions": types.SimpleNamespace(raise_compiler_error=_raise),
    "modules": types.SimpleNamespace(re=re),
}).module


def _returned(template: str, name: str, *args):
    returned = []
    getattr(ENV.from_string(template, globals={"return": returned.append}).module, name)(*args)
    return returned[-1]


def _segment_columns() -> dict[str, set[str]]:
    """int_messages column → the raw JSON paths it holds, over the Segment message types (rendered
    from macros/sources/segment.sql, the stg_segment__* models and int_message_copies.sql)."""
    common = {c: p for c, (_, p) in _returned((DBT / "macros/sources/segment.sql").read_text(), "segment_message_fields").items()}
    own = {}
    for model in (DBT / "models/staging/segment").glob("stg_segment__*.sql"):
        fields = []
        ENV.from_string(model.read_text(), globals={"segment_staging": lambda table, extra: fields.append(extra) or ""}).render()
        own[model.stem] = {c: p for c, (_, p) in fields[0].items()}
    copies = ENV.from_string((DBT / "models/intermediate/int_message_copies.sql").read_text(), globals={
        "config": lambda **_: "", "ref": lambda name: name, "var": lambda name, default=None: default,
        "type_json": lambda: "json", "dbt": types.SimpleNamespace(type_string=lambda: "varchar", type_int=lambda: "int"),
        "build_timestamp": lambda: "now()",
    }).render()
    columns: dict[str, set[str]] = {}
    for select, model in re.findall(r"select(.*?)from (stg_segment__\w+)", copies, re.S):
        assert model in own, model
        for expr, alias in re.findall(r"^\s*(\w+)(?: as (\w+))?,?$", select, re.M):
            path = {**common, **own[model]}.get(expr)
            if path:
                columns.setdefault(alias or expr, set()).add(path)
    return columns


SEGMENT_COLUMNS = _segment_columns()


def sql_reads(source: str) -> tuple[set[str], set[str]]:
    """(raw message JSON paths, contact-list columns) where dbt reads ``source``'s value."""
    sql = str(RULES_MACROS.identifier_source_value(source)).strip()
    if re.fullmatch(r"contact_(\w+)", sql):  # raw.contacts.email/phone, through stg_contacts__records
        return set(), {sql.removeprefix("contact_")}
    if re.fullmatch(r"\w+", sql):
        return SEGMENT_COLUMNS[sql], set()
    contacts = re.fullmatch(r"case when source = 'contacts' then json_extract_string\(traits, '\$\.(.+)'\) end", sql)
    if contacts:  # a key of raw.contacts.traits: the row's other columns
        return set(), {contacts[1]}
    json = re.fullmatch(r"(?:case when source <> 'contacts' then )?json_extract_string\((\w+), '\$\.(.+)'\)(?: end)?", sql)
    assert json, sql
    return {f"{base}.{json[2]}" for base in SEGMENT_COLUMNS[json[1]]}, set()


def test_the_rendered_models_read_segment_fields_where_expected():
    # the premise of sql_reads: identify traits, or other messages' context.traits; an alias's previousId
    assert SEGMENT_COLUMNS["traits"] == {"$.traits", "$.context.traits"}
    assert SEGMENT_COLUMNS["user_id"] == {"$.userId"} and SEGMENT_COLUMNS["previous_id"] == {"$.previousId"}


@pytest.mark.parametrize("rules_name", RULE_SETS)
def test_every_source_is_read_where_the_dbt_macro_reads_it(rules_name):
    rules = IdentityRules.parse(RULE_SETS[rules_name])
    for identifier_type in rules.types.values():
        for source in identifier_type.sources:
            paths, columns = sql_reads(source.text)
            assert set(source.message_paths) == paths, source
            assert {source.contact_column} - {None} == columns, source


def test_an_alias_previous_id_is_a_user_or_anonymous_id_as_int_identifiers_types_it():
    model = (DBT / "models/intermediate/int_identifiers.sql").read_text()
    assert "{%- set branches = [('previous_id', 'previousId')] -%}" in model
    assert "observed_type in ['user_id', 'anonymous_id']" in model
    fields = IdentityRules.parse(SHIPPED).message_fields()
    assert [f for f in fields if f[1] == "$.previousId"] == [("user_id", "$.previousId"), ("anonymous_id", "$.previousId")]
    only_email = {"identifier_types": {"email": {"sources": ["traits.email"]}}}
    assert "$.previousId" not in {p for _, p in IdentityRules.parse(only_email).message_fields()}


@pytest.mark.parametrize("rules_name", RULE_SETS)
def test_every_consumer_reads_the_same_fields(rules_name):
    rules = RULE_SETS[rules_name]
    parsed = IdentityRules.parse(rules)
    assert message_fields(rules) == parsed.message_fields()
    identity = IdentityFields.from_rules(rules)
    assert set(identity.message_paths) == {p for _, p in parsed.message_fields()} | {"$.userId", "$.anonymousId"}
    assert set(identity.contact_columns) == {c for _, c in parsed.contact_fields()} - {"email", "phone"}
    screened = {(t, expr) for t, expr in contact_fields(rules)}
    assert screened == {(t, c if c in ("email", "phone") else f"json_extract_string(traits, '$.{c}')")
                        for t, c in parsed.contact_fields()}


def test_the_shipped_rules_fields():
    rules = IdentityRules.parse(SHIPPED)
    assert {t: r.normalize for t, r in rules.types.items()} == {
        "user_id": "id", "email": "email", "phone": "phone", "anonymous_id": "id"}
    assert rules.message_fields() == [
        ("user_id", "$.previousId"), ("anonymous_id", "$.previousId"), ("user_id", "$.userId"),
        ("email", "$.traits.email"), ("email", "$.context.traits.email"),
        ("phone", "$.traits.phone"), ("phone", "$.context.traits.phone"), ("anonymous_id", "$.anonymousId")]
    assert rules.contact_fields() == [("email", "email"), ("phone", "phone")]


def test_custom_sources_and_headers():
    rules = IdentityRules.parse(CUSTOM)
    assert rules.types["crm_id"].contact_columns == ("crm_id",)  # column.crm_id and column.CRM ID: one column
    assert rules.types["work_email"].contact_columns == ("work_e_mail",)
    assert rules.types["device_id"].message_paths == ("$.context.device.id", "$.anonymousId")
    assert rules.types["crm_id"].reads_trait("crm_id") and not rules.types["device_id"].reads_trait("device_id")


@pytest.mark.parametrize("source", ["properties.plan", "userid", "user_id", "traits", "context.", "column", 5])
def test_a_malformed_source_is_refused_by_name(source):
    rules = {"identifier_types": {"crm_id": {"sources": ["traits.crm_id", source]}}}
    with pytest.raises(ValueError, match=r"identifier type 'crm_id'.*source"):
        IdentityRules.parse(rules)
    for consumer in (message_fields, contact_fields, IdentityFields.from_rules):
        with pytest.raises(ValueError):
            consumer(rules)
    if isinstance(source, str) and source.partition(".")[0] not in ("traits", "context", "column"):
        with pytest.raises(CompilerError, match="unknown identifier source"):  # dbt refuses it too
            RULES_MACROS.identifier_source_value(source)


@pytest.mark.parametrize("rule", [{"normalize": "upper"}, {"sources": "traits.email"}, "email"])
def test_a_malformed_rule_is_refused_by_name(rule):
    with pytest.raises(ValueError, match="identifier type 'email'"):
        IdentityRules.parse({"identifier_types": {"email": rule}})


def test_the_normalize_method_defaults_to_id():
    assert IdentityRules.parse({"identifier_types": {"crm_id": None, "x": {}}}).normalize("x") == "id"




def _dbt_on_conflict(rules: dict) -> dict:
    """``identifier_on_conflict_by_type`` of macros/identity/stitching.sql under ``rules``."""
    returned = []
    module = ENV.from_string((DBT / "macros/identity/stitching.sql").read_text(), globals={
        "exceptions": types.SimpleNamespace(raise_compiler_error=_raise), "return": returned.append,
        "identifier_types": lambda: rules["identifier_types"],
    }).module
    module.identifier_on_conflict_by_type()
    return returned[-1]


def test_on_conflict_is_read_per_type_junk_by_default_as_dbt_reads_it():
    rules = {"identifier_types": {**SHIPPED["identifier_types"],
                                  "anonymous_id": {**SHIPPED["identifier_types"]["anonymous_id"], "on_conflict": "latest"},
                                  "device_id": {"sources": ["context.device.id"], "on_conflict": "first"}}}
    parsed = IdentityRules.parse(rules)
    assert {name: t.on_conflict for name, t in parsed.types.items()} == {
        "user_id": "junk", "email": "junk", "phone": "junk", "anonymous_id": "latest", "device_id": "first"}
    assert _dbt_on_conflict(rules) == {name: t.on_conflict for name, t in parsed.types.items()}
    assert {t.on_conflict for t in IdentityRules.parse(SHIPPED).types.values()} == {"junk"}  # today's behaviour


@pytest.mark.parametrize("policy", ["last", "Latest", "", None, 1])
def test_an_unknown_on_conflict_is_refused_naming_the_type(policy):
    rules = {"identifier_types": {"email": {"normalize": "email"}, "anonymous_id": {"on_conflict": policy}}}
    with pytest.raises(ValueError, match=r"identifier type 'anonymous_id': unknown on_conflict"):
        IdentityRules.parse(rules)
    with pytest.raises(CompilerError, match=r"identifier type 'anonymous_id': unknown on_conflict"):
        _dbt_on_conflict(rules)  # dbt refuses it too, at compile time


def test_the_accuracy_command_sets_on_conflict_and_checks_it():
    import argparse

    from orchestration.cli.main import _accuracy_vars

    dbt_vars = _accuracy_vars(argparse.Namespace(vars=None, on_conflict=["anonymous_id=latest"]))
    assert dbt_vars["identity_rules"]["identifier_types"]["anonymous_id"]["on_conflict"] == "latest"
    assert dbt_vars["identity_rules"]["junk_detection"] == SHIPPED["junk_detection"]
    with pytest.raises(ValueError, match="anonymous_id"):
        _accuracy_vars(argparse.Namespace(vars=None, on_conflict=["anonymous_id=newest"]))
    with pytest.raises(ValueError, match="not an identifier type"):
        _accuracy_vars(argparse.Namespace(vars=None, on_conflict=["device=latest"]))
