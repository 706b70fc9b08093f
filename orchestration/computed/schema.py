"""Computed traits and audiences as declared in YAML: reading and checking them.

Every mistake is reported before any SQL runs, naming the file, line, definition and problem, e.g.
``audiences.yml:12: audience 'cart_abandoners', condition, all[2]: unknown operator 'greater' (use one of ...)``.
The YAML is read with the line of every mapping and key (``read_yaml``), so that definitions and the
checks of them against landed data (``orchestration/computed/landed.py``) can say where they are.
"""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PATH = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")

# Operator spellings → canonical name, and the value types each works on.
OPERATORS = {
    "equals": "equals", "=": "equals", "==": "equals",
    "not_equals": "not_equals", "!=": "not_equals",
    "lt": "lt", "<": "lt", "lte": "lte", "<=": "lte", "gt": "gt", ">": "gt", "gte": "gte", ">=": "gte",
    "contains": "contains", "not_contains": "not_contains",
    "starts_with": "starts_with", "ends_with": "ends_with",
    "exists": "exists", "not_exists": "not_exists",
    "in": "in", "is_one_of": "in",
    "before": "before", "after": "after",
}
OPERATORS_BY_TYPE = {
    "string": {"equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with", "in", "exists", "not_exists"},
    "number": {"equals", "not_equals", "lt", "lte", "gt", "gte", "in", "exists", "not_exists"},
    "boolean": {"equals", "not_equals", "exists", "not_exists"},
    "timestamp": {"before", "after", "exists", "not_exists"},
}
EVENT_FIELDS = {"event_name": "string", "message_type": "string", "source": "string", "list_name": "string",
                "event_at": "timestamp"}
PROFILE_FIELDS = {"user_id": "string", "email": "string", "phone": "string", "is_anonymous": "boolean",
                  "first_seen_at": "timestamp", "last_seen_at": "timestamp"}
TRAIT_TYPES = {"count", "sum", "avg", "min", "max", "most_frequent", "first", "last", "unique_list",
               "unique_count", "sql"}
SQL_TYPES = {"string": "varchar", "number": "double", "integer": "bigint", "boolean": "boolean", "timestamp": "timestamp"}


class DefinitionError(ValueError):
    """A computed trait or audience definition that cannot be compiled, with where it is:
    ``str()`` is ``file:line: definition: problem``."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.message, self.file, self.line = message, file, line
        super().__init__(f"{location(file, line)}{message}")


def location(file: str | None, line: int | None) -> str:
    """``traits.yml:12: `` (or less, when not known)."""
    return f"{file}:{line}: " if file and line else f"{file}: " if file else ""


# ---------------------------------------------------------------------------------------------
# YAML with line numbers
# ---------------------------------------------------------------------------------------------


class LineDict(dict):
    """A YAML mapping that knows its line (``line``, 1-based) and each key's (``lines``)."""

    line: int | None = None
    lines: dict


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line, mapping.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}", key_node.start_mark) from None
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    """A definitions file, mappings as ``LineDict``; a YAML syntax error is a DefinitionError at its line."""
    if not path.exists():
        return {}
    try:
        return yaml.load(path.read_text(), Loader=_LineLoader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise DefinitionError(f"not valid YAML: {error.problem or error}", shown_path(path),
                              mark.line + 1 if mark else None) from None


def line_of(node: Any, key: Any = None) -> int | None:
    """The line of ``node`` (a mapping read by ``read_yaml``), or of its ``key``."""
    if not isinstance(node, LineDict):
        return None
    return node.lines.get(key, node.line) if key is not None else node.line


# The file and line of the definition being read: what an error names when it has no closer line.
_where_in_file: ContextVar[tuple[str | None, int | None]] = ContextVar("where_in_file", default=(None, None))


@contextmanager
def _reading(node: Any = None, file: str | None = None):
    current_file, current_line = _where_in_file.get()
    token = _where_in_file.set((file or current_file, line_of(node) or current_line))
    try:
        yield
    finally:
        _where_in_file.reset(token)


@dataclass(frozen=True)
class Window:
    """All time, the last ``within_days`` days, or between ``from_days`` and ``to_days`` days ago."""

    within_days: int | None = None
    from_days: int | None = None
    to_days: int | None = None


@dataclass(frozen=True)
class Comparison:
    """``subject op value``: subject is an event property, an event field, a trait or a custom trait."""

    subject_kind: str  # property | field | trait | custom_trait | profile | count
    subject: str
    value_type: str
    operator: str
    value: Any = None
    file: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Combination:
    kind: str  # all | any | not
    parts: tuple


@dataclass(frozen=True)
class EventFilter:
    events: tuple[str, ...] = ()
    message_types: tuple[str, ...] = ()
    where: Any = None  # Comparison | Combination over event properties and fields
    window: Window = field(default_factory=Window)
    file: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Trait:
    name: str
    group: str
    type: str
    description: str
    filter: EventFilter
    value_kind: str | None = None  # property | field | timestamp
    value: str | None = None
    value_type: str = "number"
    min_frequency: int = 1
    sql: str | None = None
    file: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class EventCondition:
    filter: EventFilter
    performed: bool = True
    count: Comparison | None = None


@dataclass(frozen=True)
class FunnelStep:
    filter: EventFilter
    performed: bool = True
    within_days: int | None = None


@dataclass(frozen=True)
class Funnel:
    steps: tuple[FunnelStep, ...]
    window: Window = field(default_factory=Window)


@dataclass(frozen=True)
class AudienceCondition:
    audience: str


@dataclass(frozen=True)
class Audience:
    name: str
    description: str
    include_anonymous: bool
    condition: Any
    export_traits: tuple[str, ...] = ()
    file: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)


@dataclass
class Definitions:
    traits: list[Trait]
    audiences: list[Audience]


# ---------------------------------------------------------------------------------------------


def _fail(where: str, problem: str, node: Any = None, key: Any = None):
    """Raises the DefinitionError ``where: problem`` at the line of ``node`` (or of its ``key``), else
    of the definition being read."""
    file, line = _where_in_file.get()
    raise DefinitionError(f"{where}: {problem}", file, line_of(node, key) or line)


def _here(node: Any = None) -> dict:
    """The file and line fields of a definition read from ``node``."""
    file, line = _where_in_file.get()
    return {"file": file, "line": line_of(node) or line}


def _at_spec(function):
    """Errors inside ``function(where, spec, ...)`` are at ``spec``'s line."""
    @functools.wraps(function)
    def at_spec(where: str, spec, *args, **kwargs):
        with _reading(spec):
            return function(where, spec, *args, **kwargs)
    return at_spec


def _keys(where: str, spec: dict, allowed: set[str], required: set[str] = frozenset()) -> None:
    if not isinstance(spec, dict):
        _fail(where, f"expected a mapping, got {spec!r}")
    unknown = set(spec) - allowed
    if unknown:
        _fail(where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (allowed: {', '.join(sorted(allowed))})",
              spec, min(unknown, key=lambda k: line_of(spec, k) or 0))
    missing = required - set(spec)
    if missing:
        _fail(where, f"missing {', '.join(sorted(missing))}", spec)


@_at_spec
def _window(where: str, spec) -> Window:
    if spec in (None, "all_time"):
        return Window()
    _keys(where, spec, {"within_days", "between_days"})
    if "within_days" in spec:
        days = spec["within_days"]
        if not isinstance(days, int) or days <= 0:
            _fail(where, f"within_days must be a positive whole number of days, got {days!r}")
        return Window(within_days=days)
    between = spec.get("between_days")
    if not (isinstance(between, list) and len(between) == 2 and all(isinstance(d, int) and d >= 0 for d in between)
            and between[0] < between[1]):
        _fail(where, f"between_days must be [N, M] with 0 <= N < M days ago, got {between!r}")
    return Window(from_days=between[0], to_days=between[1])


def _infer_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list) and value:
        return _infer_type(value[0])
    return "string"


@_at_spec
def _comparison(where: str, spec: dict, subjects: dict[str, str | None]) -> Comparison:
    """``subjects`` maps the allowed subject keys (property, field, trait, custom_trait) to a fixed type or None."""
    allowed = set(subjects) | {"op", "value", "type"}
    _keys(where, spec, allowed, {"op"})
    present = [key for key in subjects if key in spec]
    if len(present) != 1:
        _fail(where, f"name exactly one of {', '.join(subjects)}")
    kind = present[0]
    subject = spec[kind]
    if kind == "field" and subject not in EVENT_FIELDS:
        _fail(where, f"unknown event field '{subject}' (fields: {', '.join(EVENT_FIELDS)})")
    if kind == "profile" and subject not in PROFILE_FIELDS:
        _fail(where, f"unknown profile field '{subject}' (fields: {', '.join(PROFILE_FIELDS)})")
    if not isinstance(subject, str) or not (PATH.match(subject) or kind == "trait"):
        _fail(where, f"{kind} must be a name or a dotted path, got {subject!r}")
    operator = OPERATORS.get(str(spec["op"]))
    if operator is None:
        _fail(where, f"unknown operator '{spec['op']}' (use one of {', '.join(sorted(set(OPERATORS)))})")
    fixed = subjects[kind]
    value = spec.get("value")
    declared = spec.get("type")
    if declared is not None and declared not in OPERATORS_BY_TYPE:
        _fail(where, f"unknown type '{declared}' (types: {', '.join(OPERATORS_BY_TYPE)})")
    if operator in ("before", "after"):
        value_type = "timestamp"
    else:
        value_type = (fixed or declared or {"field": EVENT_FIELDS, "profile": PROFILE_FIELDS}.get(kind, {}).get(subject)
                      or _infer_type(value))
    if declared and fixed and declared != fixed:
        _fail(where, f"{kind} '{subject}' is a {fixed}, not a {declared}")
    if operator not in OPERATORS_BY_TYPE[value_type]:
        _fail(where, f"operator '{spec['op']}' does not apply to a {value_type} "
                     f"(for a {value_type}: {', '.join(sorted(OPERATORS_BY_TYPE[value_type]))})")
    if operator in ("exists", "not_exists"):
        if "value" in spec:
            _fail(where, f"'{spec['op']}' takes no value")
    elif operator == "in":
        if not isinstance(value, list) or not value:
            _fail(where, "'in' needs a non-empty list of values")
    elif value is None or isinstance(value, (list, dict)):
        _fail(where, f"'{spec['op']}' needs one value")
    if value_type == "number" and operator not in ("exists", "not_exists"):
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                _fail(where, f"{kind} '{subject}' is compared as a number, but {item!r} is not one")
    if value_type == "timestamp" and operator in ("before", "after"):
        if not re.match(r"^\d{4}-\d{2}-\d{2}", str(value)):
            _fail(where, f"'{spec['op']}' needs a date or time like 2024-06-01, got {value!r}")
    return Comparison(kind, subject, value_type, operator, value, **_here(spec))


@_at_spec
def _predicate(where: str, spec, leaf) -> Any:
    """all/any/not nesting over leaves; a bare list means all."""
    if isinstance(spec, list):
        spec = {"all": spec}
    if isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("all", "any"):
        kind, parts = next(iter(spec.items()))
        if not isinstance(parts, list) or not parts:
            _fail(where, f"'{kind}' needs a non-empty list")
        return Combination(kind, tuple(_predicate(f"{where}, {kind}[{i + 1}]", p, leaf) for i, p in enumerate(parts)))
    if isinstance(spec, dict) and len(spec) == 1 and "not" in spec:
        return Combination("not", (_predicate(f"{where}, not", spec["not"], leaf),))
    return leaf(where, spec)


@_at_spec
def _event_filter(where: str, spec: dict) -> EventFilter:
    events = spec.get("event", spec.get("events", ()))
    events = (events,) if isinstance(events, str) else tuple(events)
    types = spec.get("message_type", ())
    types = (types,) if isinstance(types, str) else tuple(types)
    condition = None
    if spec.get("where") is not None:
        condition = _predicate(f"{where}, where", spec["where"],
                               lambda w, s: _comparison(w, s, {"property": None, "field": None}))
    return EventFilter(events, types, condition, _window(f"{where}, window", spec.get("window")), **_here(spec))


TRAIT_KEYS = {"name", "type", "description", "event", "events", "message_type", "where", "window", "property",
              "field", "value", "value_type", "min_frequency", "sql", "data_type"}


def _trait(group: str, index: int, spec: dict) -> Trait:
    with _reading(spec):
        return _read_trait(group, index, spec)


def _read_trait(group: str, index: int, spec: dict) -> Trait:
    where = f"trait group '{group}', trait {index}"
    _keys(where, spec, TRAIT_KEYS, {"name", "type"})
    name = spec["name"]
    where = f"trait '{name}' (group '{group}')"
    if not isinstance(name, str) or not NAME.match(name):
        _fail(where, "a trait name is lower case letters, digits and _ (it becomes a column)")
    kind = spec["type"]
    if kind not in TRAIT_TYPES:
        _fail(where, f"unknown trait type '{kind}' (types: {', '.join(sorted(TRAIT_TYPES))})", spec, "type")
    event_filter = _event_filter(where, spec)
    description = spec.get("description") or f"{kind} trait"
    if kind == "sql":
        if not spec.get("sql") or spec.get("data_type") not in SQL_TYPES:
            _fail(where, f"a sql trait needs 'sql' (an aggregate over profile_events) and 'data_type' "
                         f"({', '.join(SQL_TYPES)})")
        return Trait(name, group, kind, description, event_filter, value_type=spec["data_type"], sql=spec["sql"],
                     **_here(spec))
    if kind in ("count",):
        return Trait(name, group, kind, description, event_filter, value_type="integer", **_here(spec))
    value_kind = next((k for k in ("property", "field") if k in spec), None)
    if kind in ("first", "last") and spec.get("value") == "timestamp":
        return Trait(name, group, kind, description, event_filter, "field", "event_at", "timestamp", **_here(spec))
    if value_kind is None:
        _fail(where, f"a {kind} trait needs a 'property' (of the events) or a 'field' ({', '.join(EVENT_FIELDS)})")
    subject = spec[value_kind]
    if value_kind == "field" and subject not in EVENT_FIELDS:
        _fail(where, f"unknown event field '{subject}' (fields: {', '.join(EVENT_FIELDS)})")
    if value_kind == "property" and not PATH.match(str(subject)):
        _fail(where, f"property must be a dotted path, got {subject!r}", spec, value_kind)
    value_type = spec.get("value_type") or ("number" if kind in ("sum", "avg", "min", "max") else
                                            EVENT_FIELDS.get(subject, "string") if value_kind == "field" else "string")
    if value_type not in SQL_TYPES:
        _fail(where, f"unknown value_type '{value_type}' (types: {', '.join(SQL_TYPES)})")
    if kind in ("sum", "avg") and value_type != "number":
        _fail(where, f"a {kind} trait needs a number property")
    if kind in ("unique_count",):
        value_type_out = "integer"
    else:
        value_type_out = value_type
    min_frequency = spec.get("min_frequency", 1)
    if not isinstance(min_frequency, int) or min_frequency < 1:
        _fail(where, "min_frequency must be a whole number >= 1")
    return Trait(name, group, kind, description, event_filter, value_kind, subject, value_type_out
                 if kind != "unique_list" else "string", min_frequency, **_here(spec))


def _audience_leaf(audience: str, traits: dict[str, Trait], audiences: set[str]):
    @_at_spec
    def leaf(where: str, spec) -> Any:
        if not isinstance(spec, dict):
            _fail(where, f"expected a condition, got {spec!r}")
        if "funnel" in spec:
            _keys(where, spec, {"funnel", "window"})
            steps = spec["funnel"]
            if not isinstance(steps, list) or len(steps) < 2:
                _fail(where, "a funnel needs at least two steps")
            parsed = []
            for i, step in enumerate(steps):
                step_where = f"{where}, funnel step {i + 1}"
                _keys(step_where, step, {"event", "events", "message_type", "where", "performed", "within_days"})
                within = step.get("within_days")
                if within is not None and (not isinstance(within, int) or within <= 0 or i == 0):
                    _fail(step_where, "within_days (days after the previous step) is a positive number, not on step 1",
                          step, "within_days")
                performed = step.get("performed", True)
                if not performed and i != len(steps) - 1:
                    _fail(step_where, "'then did not perform' (performed: false) can only be the last step", step)
                if not performed and i == 0:
                    _fail(step_where, "the first step must be performed", step)
                parsed.append(FunnelStep(_event_filter(step_where, step), bool(performed), within))
            return Funnel(tuple(parsed), _window(f"{where}, window", spec.get("window")))
        if "event" in spec or "events" in spec or "message_type" in spec:
            _keys(where, spec, {"event", "events", "message_type", "where", "window", "performed", "count"})
            count = None
            if "count" in spec:
                count = _comparison(f"{where}, count", {"count": "events", **spec["count"]}, {"count": "number"})
                if count.operator in ("exists", "not_exists", "in"):
                    _fail(f"{where}, count", "compare the count with a number (=, !=, <, <=, >, >=)")
            return EventCondition(_event_filter(where, spec), bool(spec.get("performed", True)), count)
        if "audience" in spec:
            _keys(where, spec, {"audience"})
            if spec["audience"] not in audiences:
                _fail(where, f"unknown audience '{spec['audience']}'")
            if spec["audience"] == audience:
                _fail(where, "an audience cannot contain itself")
            return AudienceCondition(spec["audience"])
        if "trait" in spec:
            trait = traits.get(spec["trait"])
            if trait is None:
                _fail(where, f"unknown computed trait '{spec['trait']}' (traits: {', '.join(sorted(traits)) or 'none'})")
            fixed = {"integer": "number", "number": "number"}.get(trait.value_type, trait.value_type)
            return _comparison(where, spec, {"trait": fixed})
        if "custom_trait" in spec:
            return _comparison(where, spec, {"custom_trait": None})
        if "profile" in spec:
            return _comparison(where, spec, {"profile": None})
        _fail(where, "a condition is an event, a funnel, a trait, a custom_trait, a profile field, an audience, "
                     "or all/any/not")
    return leaf


def shown_path(path: Path) -> str:
    """A definitions file as messages name it: from the project's root when inside it, else in full."""
    from orchestration.core.settings import PROJECT_ROOT

    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def load_definitions(traits_path: Path, audiences_path: Path) -> Definitions:
    """Both files read and checked; the first mistake raises a DefinitionError naming its file and line."""
    with _reading(file=shown_path(traits_path)):
        traits = _read_traits(read_yaml(traits_path), traits_path.name)
    with _reading(file=shown_path(audiences_path)):
        audiences = _read_audiences(read_yaml(audiences_path), audiences_path.name, traits)
    return Definitions(traits, audiences)


def _read_traits(trait_spec, file: str) -> list[Trait]:
    _keys(file, trait_spec, {"trait_groups"})
    traits: list[Trait] = []
    groups = trait_spec.get("trait_groups") or {}
    for group, group_spec in groups.items():
        if not isinstance(group, str) or not NAME.match(group):
            _fail(f"trait group '{group}'", "a group name is lower case letters, digits and _", groups, group)
        with _reading(group_spec):
            _keys(f"trait group '{group}'", group_spec, {"description", "traits"}, {"traits"})
            if not isinstance(group_spec["traits"], list):
                _fail(f"trait group '{group}'", "traits: expected a list of traits", group_spec, "traits")
            for index, spec in enumerate(group_spec["traits"], start=1):
                trait = _trait(group, index, spec)
                if any(t.name == trait.name for t in traits):
                    _fail(f"trait '{trait.name}'", "defined twice (trait names are columns of one table)", spec)
                traits.append(trait)
    return traits


def _read_audiences(audience_spec, file: str, traits: list[Trait]) -> list[Audience]:
    _keys(file, audience_spec, {"audiences"})
    by_name = {t.name: t for t in traits}
    declared = audience_spec.get("audiences") or {}
    audiences: list[Audience] = []
    for name, spec in declared.items():
        where = f"audience '{name}'"
        if not isinstance(name, str) or not NAME.match(name):
            _fail(where, "an audience name is lower case letters, digits and _", declared, name)
        with _reading(spec):
            _keys(where, spec, {"description", "include_anonymous", "condition", "export_traits"}, {"condition"})
            condition = _predicate(f"{where}, condition", spec["condition"],
                                   _audience_leaf(name, by_name, set(declared)))
            export_traits = tuple(spec.get("export_traits") or ())
            for trait_name in export_traits:
                if trait_name not in by_name:
                    _fail(where, f"export_traits: unknown computed trait '{trait_name}'", spec, "export_traits")
            audiences.append(Audience(name, spec.get("description") or name,
                                      bool(spec.get("include_anonymous", False)), condition, export_traits,
                                      **_here(spec)))
    _check_no_cycles(audiences)
    return audiences


def comparisons(predicate) -> list[Comparison]:
    """Every comparison of a ``where`` (through its all/any/not combinations)."""
    if isinstance(predicate, Combination):
        return [c for part in predicate.parts for c in comparisons(part)]
    return [predicate] if isinstance(predicate, Comparison) else []


def audience_dependencies(condition) -> set[str]:
    if isinstance(condition, AudienceCondition):
        return {condition.audience}
    if isinstance(condition, Combination):
        return set().union(*(audience_dependencies(p) for p in condition.parts))
    return set()


def _check_no_cycles(audiences: list[Audience]) -> None:
    depends = {a.name: audience_dependencies(a.condition) for a in audiences}

    def visit(name: str, path: tuple[str, ...]):
        if name in path:
            first = next(a for a in audiences if a.name == path[0])
            raise DefinitionError(f"audience '{path[0]}': audiences depend on each other in a cycle: "
                                  f"{' → '.join(path + (name,))}", first.file, first.line)
        for other in depends.get(name, ()):
            visit(other, path + (name,))
    for audience in audiences:
        visit(audience.name, ())
