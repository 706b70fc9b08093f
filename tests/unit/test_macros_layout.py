"""The dbt macros live by concept (dbt_project/macros/<concept>/), each engine's variant beside its
generic macro, for the engines the project has a profile for, and every macro is called somewhere.
Read with regular expressions: no dbt needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DBT = ROOT / "dbt_project"
MACROS = DBT / "macros"

DEFINITION = re.compile(r"\{%-?\s*macro\s+(\w+)\s*\(")
JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
# dbt-duckdb's and dbt-spark's adapter types; `default__` is dbt's fallback.
ENGINES = {"default", "duckdb", "spark"}

# Macros dbt itself calls, by name, never a model (overrides of dbt's own, found first): each is
# live while the project uses what it serves (a pattern that must match in models/ or dbt_project.yml).
CALLED_BY_DBT = {
    # every model's schema (a `+schema:` in dbt_project.yml)
    "generate_schema_name": r"\+schema:",
    # incremental_strategy='replace_keys' on DuckDB
    "get_incremental_replace_keys_sql": r"incremental_strategy\s*=\s*['\"]replace_keys['\"]",
    # dbt-spark's strategy hooks, replaced for delete+insert and replace_keys
    "dbt_spark_validate_get_incremental_strategy": r"incremental_strategy\s*=\s*['\"](replace_keys|delete\+insert)['\"]",
    "dbt_spark_get_incremental_sql": r"incremental_strategy\s*=\s*['\"](replace_keys|delete\+insert)['\"]",
    # dbt-spark's incremental materialization makes its temporary relation with it
    "spark__create_temporary_view": r"incremental_strategy\s*=\s*['\"](replace_keys|delete\+insert)['\"]",
    # every incremental model asks it whether to rebuild from scratch
    "should_full_refresh": r"materialized\s*=\s*['\"]incremental['\"]",
    # dbt hands it the relation of every data test
    "default__get_where_subquery": r"\bdata_tests:",
}


def _macro_files() -> list[Path]:
    return sorted(MACROS.rglob("*.sql"))


def _definitions() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in _macro_files():
        for name in DEFINITION.findall(path.read_text()):
            found.setdefault(name, []).append(path)
    return found


def _engine_split(name: str) -> tuple[str | None, str]:
    prefix, sep, generic = name.partition("__")
    return (prefix, generic) if sep and prefix and generic else (None, name)


def _sources() -> dict[Path, str]:
    """Where a macro can be called from: the dbt project (models, macros, data tests, YAML), the
    Python that runs or generates dbt SQL, and the docs (for run-operations). Not the pytest tests:
    a macro only a test reads is not used."""
    paths = [p for p in DBT.rglob("*") if p.suffix in {".sql", ".yml", ".yaml"}
             and not {"target", "logs", "dbt_packages"} & set(p.relative_to(DBT).parts)]
    paths += list((ROOT / "orchestration").rglob("*.py")) + list((ROOT / "benchmarks").rglob("*.py"))
    paths += list((ROOT / "docs").glob("*.md")) + [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    return {p: JINJA_COMMENT.sub("", p.read_text()) for p in paths if p.is_file()}


SOURCES = _sources()
DEFINED = _definitions()


def _called(name: str) -> bool:
    """`name(` (or `dbt.name(`) anywhere but its own definition, or `run-operation name` (a command
    line, a list of arguments)."""
    call = re.compile(rf"(?<!\w){name}\s*\(")
    operation = re.compile(rf"run-operation['\"]?,?\s*['\"]?{name}\b")
    for text in SOURCES.values():
        without_definition = DEFINITION.sub(lambda m: "" if m.group(1) == name else m.group(0), text)
        if call.search(without_definition) or operation.search(without_definition):
            return True
    return False


def test_no_macro_file_at_the_top_level():
    loose = [p.name for p in MACROS.iterdir() if p.is_file()]
    assert loose == [], f"macro files outside a concept folder: {loose}"


def test_no_folder_or_file_named_after_an_engine():
    """Engine variants sit beside their generic macro, not in an engine's folder or file."""
    named = [str(p.relative_to(MACROS)) for p in MACROS.rglob("*")
             if p.stem.lower() in ENGINES | {"snowflake", "bigquery", "postgres"}]
    assert named == []


def test_every_macro_defined_once():
    assert {name: paths for name, paths in DEFINED.items() if len(paths) > 1} == {}


def test_engine_prefixes_are_the_profiles_engines():
    """Variants only for the engines profiles.yml has (dbt's `default__` aside)."""
    profile = yaml.safe_load((ROOT / "profiles.yml").read_text())
    types = {output["type"] for output in profile["identity_warehouse"]["outputs"].values()}
    assert types | {"default"} == ENGINES
    others = sorted(name for name in DEFINED if _engine_split(name)[0] not in (None, *ENGINES))
    assert others == []


def test_engine_variants_sit_beside_their_generic_macro():
    """`spark__x` in the file of `x`; a variant of one of dbt's own macros (found first through
    `dispatch` in dbt_project.yml) stands for a `dbt.x(` the project calls."""
    misplaced = {}
    for name, (path, *_) in DEFINED.items():
        engine, generic = _engine_split(name)
        if engine is None or name in CALLED_BY_DBT:
            continue
        if generic in DEFINED:
            if DEFINED[generic][0] != path:
                misplaced[name] = f"{path.relative_to(MACROS)}, its generic in {DEFINED[generic][0].relative_to(MACROS)}"
        elif not any(re.search(rf"\bdbt\.{generic}\s*\(", text) for text in SOURCES.values()):
            misplaced[name] = f"no macro {generic} in the project, and no dbt.{generic}( called"
    assert misplaced == {}


def test_every_macro_is_called():
    uncalled = []
    for name in DEFINED:
        engine, generic = _engine_split(name)
        if name in CALLED_BY_DBT:
            serves = re.compile(CALLED_BY_DBT[name])
            if not any(serves.search(text) for path, text in SOURCES.items()
                       if (DBT / "models") in path.parents or path.name == "dbt_project.yml"):
                uncalled.append(name)
        elif engine is not None:
            # dispatched: live while its generic is (the project's, or dbt's own)
            if not (_called(generic) if generic in DEFINED else _called(f"dbt.{generic}")):
                uncalled.append(name)
        elif not _called(name):
            uncalled.append(name)
    assert uncalled == []


# Files whose SQL is written out as template text ({% set sql %}...{% endset %}), not assembled
# from Jinja strings joined with `~`, so that it reads (and lints) as SQL.
READABLE_SQL = ["identity/connected_components.sql", "identity/enforce_identifier_limits.sql"]
SQL_WORD = re.compile(r"\b(select|from|join|where|insert|delete|drop|create|alter|union|group by)\b", re.I)
JINJA_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.S)
STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")


@pytest.mark.parametrize("name", READABLE_SQL)
def test_sql_is_written_as_templates_not_strings(name):
    text = JINJA_COMMENT.sub("", (MACROS / name).read_text())
    in_strings = [literal for tag in JINJA_TAG.findall(text) for literal in STRING.findall(tag)
                  if SQL_WORD.search(literal)]
    assert in_strings == []
