"""Computed traits and audiences, compiled from YAML into dbt models.

``dbt_project/definitions/traits.yml`` and ``audiences.yml`` become, under
``dbt_project/models/computed/`` (generated, not in git):

- ``traits__<group>``: one row per profile, one typed column per trait of the group;
- ``profile_traits``: every trait group joined into one wide table keyed by ``profile_id``;
- ``audience__<name>``: one row per profile considered, ``is_member`` and, per condition, whether it
  held and the value that decided;
- ``audience_members`` and ``audience_condition_results``: all audiences in one place.

Every condition is aggregated per profile on its own before the conditions meet, so two event
conditions or a profile's several identities never multiply counts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
import tempfile
from pathlib import Path

import yaml

from orchestration.computed.schema import (
    SQL_TYPES,
    Audience,
    AudienceCondition,
    Combination,
    Comparison,
    Definitions,
    EventCondition,
    EventFilter,
    Funnel,
    Trait,
    Window,
    audience_dependencies,
    load_definitions,
)
from orchestration.core.locking import file_lock

HEADER = "-- Generated from dbt_project/definitions/{source} by orchestration/computed/compiler.py: edit the YAML, not this file.\n"
# The events every trait and audience condition reads. Each reader scans profile_events again: a CTE
# that several read is kept by DuckDB, here a copy of every event with its properties, which at 5 M
# people outgrew a 3 GB limit and spilled (unmaterialized_cte).
EVENTS_SQL = "select * from {{ ref('profile_events') }} where profile_id is not null and event_at <= {{ as_of() }}"


def _ctes_sql(ctes: list[tuple[str, str]]) -> str:
    """``name as (sql)``, ..., with the events read again by each reader, not kept."""
    return ",\n\n".join(f"{name} as {'{{ unmaterialized_cte() }} ' if name == 'events' else ''}(\n\n    {sql}\n\n)"
                          for name, sql in ctes)


def _literal(value, value_type: str) -> str:
    """SQL for a literal value. Strings go through the dbt macro ``string_literal`` (engines escape
    quotes and backslashes differently)."""
    if value_type == "number":
        return repr(float(value)) if isinstance(value, float) else str(int(value))
    if value_type == "boolean":
        return "true" if value else "false"
    text = emit(_string_literal_expression(value))
    return f"cast({text} as timestamp)" if value_type == "timestamp" else text


def _string_literal_expression(value) -> str:
    """The Jinja expression of a SQL string literal holding ``value``."""
    return f"string_literal({raw(str(value))})"


def raw(sql: str) -> str:
    """Raw SQL as a Jinja expression (a string literal)."""
    return '"' + sql.replace("\\", "\\\\").replace('"', '\\"') + '"'


NUMBER_DECIMALS = 6  # sums and averages of numbers are rounded to this many decimals


def emit(expression: str) -> str:
    """A Jinja expression rendered into the SQL."""
    return "{{ " + expression + " }}"


def _typed(text_expression: str, value_type: str) -> str:
    """A value read as text (a JSON field or a column), as the type it is compared as (Jinja expressions)."""
    if value_type == "number":
        return f"dbt.safe_cast({text_expression}, 'double')"
    if value_type == "timestamp":
        return f"parse_timestamp({text_expression})"
    if value_type == "boolean":
        return f'("(lower(" ~ {text_expression} ~ ") = \'true\')")'
    return text_expression


def _event_value(kind: str, subject: str, value_type: str, alias: str = "events") -> str:
    if kind == "field":
        return raw(f"{alias}.{subject}")
    return _typed(f"json_get_string('{alias}.properties', '$.{subject}')", value_type)


def _compare(expression: str, comparison: Comparison) -> str:
    """SQL for ``expression op value``; ``expression`` is a Jinja expression."""
    op, value, value_type = comparison.operator, comparison.value, comparison.value_type
    x = emit(expression)
    if op == "exists":
        return f"({x} is not null)"
    if op == "not_exists":
        return f"({x} is null)"
    if op == "in":
        return f"({x} in ({', '.join(_literal(v, value_type) for v in value)}))"
    literal = _literal(value, value_type)
    position = emit(f"dbt.position({_string_literal_expression(value)}, {expression})")
    return {
        "equals": f"({x} = {literal})",
        "not_equals": f"coalesce({x} <> {literal}, true)",
        "lt": f"({x} < {literal})", "lte": f"({x} <= {literal})",
        "gt": f"({x} > {literal})", "gte": f"({x} >= {literal})",
        "before": f"({x} < {literal})", "after": f"({x} > {literal})",
        "contains": f"({position} > 0)",
        "not_contains": f"coalesce({position} = 0, true)",
        "starts_with": f"({position} = 1)",
        "ends_with": f"({emit(f'dbt.right({expression}, {len(str(value))})')} = {_literal(value, 'string')})",
    }[op]


def _predicate_sql(predicate, leaf) -> str:
    if isinstance(predicate, Combination):
        parts = [_predicate_sql(p, leaf) for p in predicate.parts]
        if predicate.kind == "not":
            return f"(not coalesce({parts[0]}, false))"
        return "(" + f" {'and' if predicate.kind == 'all' else 'or'} ".join(f"coalesce({p}, false)" for p in parts) + ")"
    return leaf(predicate)


def _window_sql(window: Window, column: str = "events.event_at") -> list[str]:
    if window.within_days:
        return [f"{column} > {{{{ dbt.dateadd('day', -{window.within_days}, as_of()) }}}}"]
    if window.to_days is not None:
        return [f"{column} > {{{{ dbt.dateadd('day', -{window.to_days}, as_of()) }}}}",
                f"{column} <= {{{{ dbt.dateadd('day', -{window.from_days}, as_of()) }}}}"]
    return []


def filter_sql(event_filter: EventFilter, alias: str = "events") -> str:
    clauses = []
    if event_filter.events:
        clauses.append(f"{alias}.event_name in ({', '.join(_literal(e, 'string') for e in event_filter.events)})")
    if event_filter.message_types:
        clauses.append(f"{alias}.message_type in ({', '.join(_literal(t, 'string') for t in event_filter.message_types)})")
    if event_filter.where is not None:
        clauses.append(_predicate_sql(
            event_filter.where, lambda c: _compare(_event_value(c.subject_kind, c.subject, c.value_type, alias), c)))
    clauses += _window_sql(event_filter.window, f"{alias}.event_at")
    return " and ".join(clauses) or "true"


def describe_filter(event_filter: EventFilter) -> str:
    what = " or ".join(f"'{e}'" for e in event_filter.events) or (
        " or ".join(event_filter.message_types) + " messages" if event_filter.message_types else "any event")
    window = event_filter.window
    if window.within_days:
        what += f" within the last {window.within_days} days"
    elif window.to_days is not None:
        what += f" between {window.from_days} and {window.to_days} days ago"
    if event_filter.where is not None:
        what += " where " + _describe_predicate(event_filter.where)
    return what


def _describe_predicate(predicate) -> str:
    if isinstance(predicate, Combination):
        if predicate.kind == "not":
            return f"not ({_describe_predicate(predicate.parts[0])})"
        return f" {'and' if predicate.kind == 'all' else 'or'} ".join(f"({_describe_predicate(p)})" for p in predicate.parts)
    if isinstance(predicate, Comparison):
        value = "" if predicate.operator in ("exists", "not_exists") else f" {json.dumps(predicate.value)}"
        return f"{predicate.subject_kind} {predicate.subject} {predicate.operator}{value}"
    if isinstance(predicate, EventCondition):
        text = ("performed " if predicate.performed else "did not perform ") + describe_filter(predicate.filter)
        if predicate.count is not None:
            text += f", count {predicate.count.operator} {predicate.count.value}"
        return text
    if isinstance(predicate, Funnel):
        steps = [("then " if i else "") + ("" if s.performed else "did not perform ") + describe_filter(s.filter)
                 + (f" within {s.within_days} days" if s.within_days else "") for i, s in enumerate(predicate.steps)]
        return "funnel: " + ", ".join(steps)
    if isinstance(predicate, AudienceCondition):
        return f"member of audience {predicate.audience}"
    raise TypeError(predicate)


# ---------------------------------------------------------------------------------------------
# Traits
# ---------------------------------------------------------------------------------------------


def _trait_cte(trait: Trait) -> tuple[str, str]:
    """(CTE body, SQL type) of one trait: one row per profile with a `value`."""
    where = filter_sql(trait.filter)
    source = f"from events where {where}"
    if trait.type == "count":
        return f"select profile_id, count(*) as value {source} group by 1", "bigint"
    if trait.type == "sql":
        return f"select profile_id, {trait.sql} as value {source} group by 1", SQL_TYPES[trait.value_type]
    value_type = "string" if trait.type in ("unique_count", "unique_list") else trait.value_type
    expression = _event_value(trait.value_kind, trait.value, value_type)
    value = emit(expression)
    sql_type = SQL_TYPES[trait.value_type]
    if trait.type in ("sum", "avg", "min", "max"):
        aggregate = f"{trait.type}({value})"
        if trait.type in ("sum", "avg") and trait.value_type == "number":
            # Sums of doubles differ in the last digits with the order the threads add them up in
            # (208.89 vs 208.89000000000001): rounded, a rebuild gives the same value.
            aggregate = f"round({aggregate}, {NUMBER_DECIMALS})"
        return f"select profile_id, {aggregate} as value {source} and {value} is not null group by 1", sql_type
    if trait.type == "unique_count":
        return f"select profile_id, count(distinct {value}) as value {source} group by 1", "bigint"
    if trait.type == "unique_list":
        return (f"select profile_id, {emit(f'json_array_agg_distinct({expression})')} as value {source}"
                f" and {value} is not null group by 1"), "json"
    if trait.type == "most_frequent":
        return (f"select profile_id, value from (select profile_id, value, count(*) as frequency, row_number() over "
                f"(partition by profile_id order by count(*) desc, value) as frequency_rank from (select profile_id, "
                f"{value} as value {source}) as valued where value is not null group by profile_id, value) as counted "
                f"where frequency_rank = 1 and frequency >= {trait.min_frequency}"), sql_type
    order = "asc" if trait.type == "first" else "desc"
    return (f"select profile_id, value from (select profile_id, {value} as value, row_number() over (partition by "
            f"profile_id order by event_at {order}, message_id {order}) as position {source} and {value} is not null)"
            f" as ordered where position = 1"), sql_type


# What an `sql` trait may call to read the clock: a group with one recomputes every profile each build.
CLOCK_FUNCTIONS = re.compile(r"\b(as_of|now|today|current_date|current_time|current_timestamp|localtime|localtimestamp|"
                             r"get_current_time|get_current_timestamp|getdate|sysdate|unix_timestamp)\b", re.IGNORECASE)
# The columns an incremental trait group keeps to find what to recompute.
TRAIT_GROUP_STATE_DOCS = [
    {"name": "as_of", "description": "The as_of this row was computed at. A later build keeps the row when nothing "
                                     "could change it: no change to the profile, no event across a window's edge."},
    {"name": "updated_at", "description": "When the build that computed this row started."},
    {"name": "rules_fingerprint", "description": "A hash of the group's definitions the row was computed under: "
                                                 "under other definitions, every row is recomputed."},
]


# A generated model's meta: the days before `as_of` where time alone changes its rows (window_edges,
# audience_window_edges). The build skips the models that read the clock while no event crosses one
# (orchestration/location/build_state.py); a model that reads the clock without it is always rebuilt.
TIME_EDGES_META = "time_edges_days"


def _window_days(window: Window) -> set[int]:
    return {days for days in (window.within_days, window.from_days, window.to_days) if days}


def window_edges(traits: list[Trait]) -> list[int] | None:
    """The days before `as_of` where time alone changes a trait of the group: 0 (an event is not
    counted before its time) and the edges of every window. None when an `sql` trait reads the
    clock: then no event bounds what time changes."""
    if any(trait.type == "sql" and CLOCK_FUNCTIONS.search(trait.sql) for trait in traits):
        return None
    return sorted({0}.union(*(_window_days(trait.filter.window) for trait in traits)))


def audience_window_edges(audience: Audience) -> list[int]:
    """As window_edges, for an audience's own SQL: 0, its event windows, and the `within_days` of
    its funnel steps (a step not performed within N days holds N days after the step before it).
    What it reads from traits or other audiences moves with their own edges."""
    days = {0}

    def visit(predicate) -> None:
        if isinstance(predicate, Combination):
            for part in predicate.parts:
                visit(part)
        elif isinstance(predicate, EventCondition):
            days.update(_window_days(predicate.filter.window))
        elif isinstance(predicate, Funnel):
            days.update(_window_days(predicate.window))
            for step in predicate.steps:
                days.update(_window_days(step.filter.window) | ({step.within_days} if step.within_days else set()))
    visit(audience.condition)
    return sorted(days)


def trait_group_sql(group: str, traits: list[Trait]) -> str:
    """A trait group's model: incremental when `window_edges` bounds what time changes (see the
    model's comment), a table rebuilt each time otherwise."""
    edges = window_edges(traits)

    def changed_only(keyword: str) -> str:  # the filter to the changed profiles, when incremental
        if edges is None:
            return ""
        return f"{{% if only_changed %}} {keyword} profile_id in (select profile_id from changed){{% endif %}}"

    ctes = [("profiles", "select profile_id from {{ ref('profiles') }}" + changed_only("where")),
            ("events", EVENTS_SQL + changed_only("and"))]
    columns = []
    for trait in traits:
        body, sql_type = _trait_cte(trait)
        ctes.append((f"trait_{trait.name}", body))
        value = f"trait_{trait.name}.value"
        if trait.type in ("count", "unique_count"):
            value = f"coalesce({value}, 0)"
        columns.append((trait.name, emit(f"dbt.cast({raw(value)}, {raw(sql_type)}) | trim")))
    joins = "\n".join(f"left join trait_{t.name} on trait_{t.name}.profile_id = profiles.profile_id" for t in traits)
    body = _ctes_sql(ctes)
    select = ",\n    ".join(["profiles.profile_id"] + [f"{expr} as {name}" for name, expr in columns])
    if edges is None:
        return (HEADER.format(source="traits.yml") + "{{ config(schema='traits', materialized='table') }}\n\n"
                "{#- An sql trait reads the clock: every profile is recomputed each build. -#}\n"
                f"with\n\n{body}\n\nselect\n    {select}\n\nfrom profiles\n{joins}\n")
    fingerprint = hashlib.sha256(body.encode()).hexdigest()[:16]
    key_only = ",\n    ".join(["{{ 'changed.profile_id' if only_changed else 'null' }} as profile_id"]
                              + [f"null as {name}" for name, _ in columns]
                              + [f"cast(null as timestamp) as {name}" for name in ("as_of", "updated_at")]
                              + ["cast(null as {{ dbt.type_string() }}) as rules_fingerprint"])
    return (HEADER.format(source="traits.yml")
            + "{{ config(\n    schema='traits',\n    materialized='incremental',\n    incremental_strategy='replace_keys',\n"
              "    unique_key='profile_id',\n    key_only_when_null='updated_at',\n    on_schema_change='sync_all_columns',\n) }}\n\n"
            + f"""{{#- Incremental: a build recomputes the profiles that changed since the last one (int_profile_changes),
    the profiles that are gone, and the profiles with an event that time alone moved across the edge
    of a window ({", ".join(map(str, edges))} days before as_of) since the as_of of the last build; it
    replaces their rows (`replace_keys`). Under other definitions, or at an as_of earlier than the
    last build's, every profile is recomputed. -#}}
{{%- set fingerprint = '{fingerprint}' -%}}
{{%- set incremental = is_incremental() -%}}
{{%- set rebuild = incremental and this is not string and (built_under_other_rules(this, fingerprint)
                   or computed_after(this, as_of())) -%}}
{{%- set only_changed = incremental and not rebuild -%}}
{{%- set profile_changes = ref('int_profile_changes') -%}}
with
{{%- if only_changed %}}

-- few profiles, read by every trait below: computed once
changed as {{{{ materialized_cte() }}}} (

    {{{{ profiles_changed_since(this, profile_changes) }}}}

    union

    {{{{ profiles_with_events_across_window_edges(this, {edges}) }}}}

),
{{%- endif %}}

{body}

select
    {select},
    {{{{ as_of() }}}} as as_of,
    {{{{ build_timestamp() }}}} as updated_at,
    '{{{{ fingerprint }}}}' as rules_fingerprint

from profiles
{joins}
{{%- if incremental %}}

-- Each profile recomputed, by its id alone: replace_keys deletes its row first (a gone profile has
-- no other). (A rebuild: one row with a null id, which names every profile.)
union all

select
    {key_only}
{{%- if only_changed %}}

from changed
{{%- endif %}}
{{%- endif %}}
""")


def profile_traits_sql(groups: dict[str, list[Trait]]) -> str:
    columns = ["profiles.profile_id"] + [f"traits__{g}.{t.name}" for g, ts in groups.items() for t in ts]
    joins = "\n".join(f"left join {{{{ ref('traits__{g}') }}}} as traits__{g} on traits__{g}.profile_id = profiles.profile_id"
                      for g in groups)
    return (HEADER.format(source="traits.yml") + "{{ config(schema='marts', materialized='table') }}\n\n"
            "select\n    " + ",\n    ".join(columns) + "\nfrom {{ ref('profiles') }} as profiles\n" + joins + "\n")


# ---------------------------------------------------------------------------------------------
# Audiences
# ---------------------------------------------------------------------------------------------


class _AudienceBuilder:
    def __init__(self, audience: Audience, definitions: Definitions):
        self.audience = audience
        self.definitions = definitions
        self.ctes: list[tuple[str, str]] = []
        self.joins: list[str] = []
        self.conditions: list[tuple[str, str, str]] = []  # (held SQL, value SQL, description)
        self.uses_traits = False

    def leaf(self, condition) -> str:
        number = len(self.conditions) + 1
        name = f"condition_{number}"
        if isinstance(condition, EventCondition):
            self.ctes.append((name, f"select profile_id, count(*) as events_count from events where "
                                    f"{filter_sql(condition.filter)} group by 1"))
            self.joins.append(f"left join {name} on {name}.profile_id = profiles.profile_id")
            count = f"coalesce({name}.events_count, 0)"
            if condition.count is not None:
                held = _compare(raw(count), condition.count)
                held = held if condition.performed else f"(not {held})"
            else:
                held = f"({count} {'>' if condition.performed else '='} 0)"
            value = f"cast({count} as {{{{ dbt.type_string() }}}}) || ' event(s)'"
        elif isinstance(condition, Funnel):
            held, value = self._funnel(name, condition)
        elif isinstance(condition, AudienceCondition):
            self.joins.append(f"left join {{{{ ref('audience__{condition.audience}') }}}} as {name} "
                              f"on {name}.profile_id = profiles.profile_id")
            held = f"coalesce({name}.is_member, false)"
            value = f"case when {held} then 'member' else 'not a member' end"
        elif condition.subject_kind == "trait":
            self.uses_traits = True
            held = _compare(raw(f"traits.{condition.subject}"), condition)
            value = f"cast(traits.{condition.subject} as {{{{ dbt.type_string() }}}})"
        elif condition.subject_kind == "profile":
            held = _compare(raw(f"profiles.{condition.subject}"), condition)
            value = f"cast(profiles.{condition.subject} as {{{{ dbt.type_string() }}}})"
        else:  # custom trait, from the merged traits of the profile
            text = f"json_get_string('profiles.traits', '$.{condition.subject}')"
            held = _compare(_typed(text, condition.value_type), condition)
            value = emit(text)
        self.conditions.append((f"coalesce({held}, false)", f"coalesce({value}, 'none')", _describe_predicate(condition)))
        return name

    def _funnel(self, name: str, funnel: Funnel) -> tuple[str, str]:
        """Ordered steps: each path goes on with the earliest next step after the previous one."""
        first = funnel.steps[0]
        window = " and ".join(_window_sql(funnel.window)) or "true"
        self.ctes.append((f"{name}_step_1", f"select profile_id, event_at as step_at from events where "
                                            f"{filter_sql(first.filter)} and {window}"))
        previous = f"{name}_step_1"
        for index, step in enumerate(funnel.steps[1:], start=2):
            limit = (f" and events.event_at <= {{{{ dbt.dateadd('day', {step.within_days}, 'path.step_at') }}}}"
                     if step.within_days else "")
            match = (f"events.profile_id = path.profile_id and events.event_at > path.step_at{limit} and "
                     f"{filter_sql(step.filter)} and {window}")
            if step.performed:
                body = (f"select path.profile_id, min(events.event_at) as step_at from {previous} as path "
                        f"join events on {match} group by path.profile_id, path.step_at")
            else:
                elapsed = (f" and {{{{ dbt.dateadd('day', {step.within_days}, 'path.step_at') }}}} <= {{{{ as_of() }}}}"
                           if step.within_days else "")
                body = (f"select path.profile_id, path.step_at from {previous} as path where not exists "
                        f"(select 1 from events where {match}){elapsed}")
            self.ctes.append((f"{name}_step_{index}", body))
            previous = f"{name}_step_{index}"
        self.ctes.append((name, f"select profile_id, count(*) as paths, min(step_at) as completed_at from {previous} group by 1"))
        self.joins.append(f"left join {name} on {name}.profile_id = profiles.profile_id")
        held = f"({name}.paths is not null)"
        value = (f"case when {name}.paths is null then 'not completed' else 'completed at ' || "
                 f"cast({name}.completed_at as {{{{ dbt.type_string() }}}}) end")
        return held, value

    def sql(self) -> str:
        numbers = itertools.count(1)  # leaves are numbered in the order build() visited them
        membership = _predicate_sql(self.audience.condition, lambda _: f"condition_{next(numbers)}_held")
        anonymous = "" if self.audience.include_anonymous else "\n    where not is_anonymous"
        ctes = [("profiles", f"select * from {{{{ ref('profiles') }}}}{anonymous}"),
                ("events", EVENTS_SQL),
                *self.ctes]
        joins = list(self.joins)
        if self.uses_traits:
            joins.append("left join {{ ref('profile_traits') }} as traits on traits.profile_id = profiles.profile_id")
        evaluated = ",\n        ".join(
            [f"{held} as condition_{i}_held,\n        {value} as condition_{i}_value"
             for i, (held, value, _) in enumerate(self.conditions, start=1)])
        body = _ctes_sql(ctes)
        conditions_select = ",\n    ".join(
            f"condition_{i}_held,\n    condition_{i}_value" for i in range(1, len(self.conditions) + 1))
        return (HEADER.format(source="audiences.yml") + "{{ config(schema='audiences', materialized='table') }}\n\n"
                f"with\n\n{body},\n\nevaluated as (\n\n    select\n        profiles.profile_id,\n        {evaluated}\n"
                f"    from profiles\n    " + "\n    ".join(joins) + "\n\n)\n\n"
                f"select\n    profile_id,\n    coalesce({membership}, false) as is_member,\n    {conditions_select}\n"
                f"from evaluated\n")

    def build(self) -> str:
        def collect(predicate, negated: bool):
            if isinstance(predicate, Combination):
                for part in predicate.parts:
                    collect(part, negated != (predicate.kind == "not"))
            else:
                self.leaf(predicate)
                if negated:  # say so: the condition is wanted false
                    held, value, description = self.conditions[-1]
                    self.conditions[-1] = (held, value, f"(wanted false) {description}")
        collect(self.audience.condition, False)
        return self.sql()


def audience_sql(audience: Audience, definitions: Definitions) -> tuple[str, list[str]]:
    builder = _AudienceBuilder(audience, definitions)
    return builder.build(), [description for _, _, description in builder.conditions]


def audience_members_sql(audiences: list[Audience]) -> str:
    parts = [f"    select '{a.name}' as audience, profile_id from {{{{ ref('audience__{a.name}') }}}} where is_member"
             for a in audiences]
    members = "\n    union all\n".join(parts) if parts else (
        "    select cast(null as {{ dbt.type_string() }}) as audience, cast(null as {{ dbt.type_string() }}) as profile_id where 1 = 0")
    return (HEADER.format(source="audiences.yml") + "{{ config(schema='marts', materialized='table') }}\n\n"
            f"with\n\nmembers as (\n\n{members}\n\n)\n\n"
            "select members.audience, members.profile_id, profiles.user_id, profiles.email, profiles.phone\n"
            "from members\njoin {{ ref('profiles') }} as profiles on profiles.profile_id = members.profile_id\n")


def condition_results_sql(audiences: list[Audience], descriptions: dict[str, list[str]]) -> str:
    parts = []
    for audience in audiences:
        for i, description in enumerate(descriptions[audience.name], start=1):
            parts.append(f"    select '{audience.name}' as audience, profile_id, is_member, {i} as condition_number, "
                         f"{_literal(description, 'string')} as condition, condition_{i}_held as held, "
                         f"condition_{i}_value as decided_by from {{{{ ref('audience__{audience.name}') }}}}")
    body = "\n    union all\n".join(parts) if parts else (
        "    select cast(null as {{ dbt.type_string() }}) as audience, cast(null as {{ dbt.type_string() }}) as profile_id,"
        " false as is_member, 0 as condition_number, cast(null as {{ dbt.type_string() }}) as condition, false as held,"
        " cast(null as {{ dbt.type_string() }}) as decided_by where 1 = 0")
    # A view: a union of the audience tables' columns costs nothing to build (a table took 4 s at
    # 1 M people) and a question about one audience or profile reads only what it needs. On Spark a
    # table: a view lives in Spark's metastore only, and the Dagster job's steps read Spark's tables
    # from their files (orchestration/spark/tables.py).
    return (HEADER.format(source="audiences.yml")
            + "{{ config(schema='marts', materialized=('table' if target.type == 'spark' else 'view')) }}\n\n"
            + body + "\n")


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _example_query(what: str, sql: str) -> str:
    return f"\n\n\nExample: {what}\n\n```sql\n{sql}\n```\n"


def _time_edges_config(edges: list[int] | None) -> dict:
    return {} if edges is None else {"config": {"meta": {TIME_EDGES_META: edges}}}


def _models_yaml(definitions: Definitions, groups: dict[str, list[Trait]], descriptions: dict[str, list[str]]) -> dict:
    trait_type = {"count": "bigint", "unique_count": "bigint", "unique_list": "json"}
    models = []
    for group, traits in groups.items():
        models.append({
            "name": f"traits__{group}",
            "description": f"Computed traits of the group '{group}' (dbt_project/definitions/traits.yml), one row per profile.",
            "columns": [{"name": "profile_id", "description": "The profile.", "data_tests": ["unique", "not_null"]}]
            + [{"name": t.name, "description": t.description} for t in traits]
            + (TRAIT_GROUP_STATE_DOCS if window_edges(traits) is not None else []),
            **_time_edges_config(window_edges(traits)),
        })
    all_traits = [t for ts in groups.values() for t in ts]
    models.append({
        "name": "profile_traits",
        "description": "Every computed trait, one typed column each, one row per profile (join marts.profiles on profile_id)."
                       + _example_query("the computed traits of the people with an e-mail, highest first",
                                        "select p.email, t.* exclude (profile_id)\nfrom marts.profile_traits as t\n"
                                        "join marts.profiles as p using (profile_id)\nwhere p.email is not null\n"
                                        + (f"order by t.{all_traits[0].name} desc nulls last\n" if all_traits else "")
                                        + "limit 20;"),
        "config": {"contract": {"enforced": True}},
        "columns": [{"name": "profile_id", "data_type": "varchar", "description": "The profile.",
                     "constraints": [{"type": "not_null"}], "data_tests": ["unique"]}]
        + [{"name": t.name, "data_type": trait_type.get(t.type, SQL_TYPES[t.value_type]),
            "description": f"{t.description} ({t.type}{', ' + describe_filter(t.filter) if t.type != 'sql' else ''})"}
           for t in all_traits],
    })
    for audience in definitions.audiences:
        columns = [{"name": "profile_id", "description": "The profile.", "data_tests": ["unique", "not_null"]},
                   {"name": "is_member", "description": "True when the profile is in the audience."}]
        for i, description in enumerate(descriptions[audience.name], start=1):
            columns += [{"name": f"condition_{i}_held", "description": f"Whether this held: {description}."},
                        {"name": f"condition_{i}_value", "description": f"The value that decided: {description}."}]
        models.append({"name": f"audience__{audience.name}", **_time_edges_config(audience_window_edges(audience)),
                       "description": f"{audience.description} (audience; anonymous profiles "
                                      f"{'included' if audience.include_anonymous else 'left out'})."
                                      + _example_query("the members, with the value that decided the first condition",
                                                       f"select profile_id, condition_1_value\nfrom audiences.audience__{audience.name}\n"
                                                       "where is_member;"),
                       "columns": columns})
    return {"version": 2, "models": models}


def compile_definitions(project_dir: Path) -> Definitions:
    """Check the YAML and (re)write the generated models; raises DefinitionError before any SQL runs."""
    definitions = load_definitions(project_dir / "definitions" / "traits.yml",
                                   project_dir / "definitions" / "audiences.yml")
    groups: dict[str, list[Trait]] = {}
    for trait in definitions.traits:
        groups.setdefault(trait.group, []).append(trait)
    files = {f"traits__{group}.sql": trait_group_sql(group, traits) for group, traits in groups.items()}
    files["profile_traits.sql"] = profile_traits_sql(groups)
    descriptions = {}
    for audience in _dependency_order(definitions.audiences):
        files[f"audience__{audience.name}.sql"], descriptions[audience.name] = audience_sql(audience, definitions)
    files["audience_members.sql"] = audience_members_sql(definitions.audiences)
    files["audience_condition_results.sql"] = condition_results_sql(definitions.audiences, descriptions)
    files["_computed__models.yml"] = yaml.safe_dump(_models_yaml(definitions, groups, descriptions), sort_keys=False)
    _write_models(project_dir, files)
    return definitions


def _write_models(project_dir: Path, files: dict[str, str]) -> None:
    """Replace ``models/computed`` with ``files``, unless it holds them already.

    Runs on other warehouses from the same checkout compile at the same time: one at a time (a lock),
    each in a folder of its own outside ``models/`` (dbt never reads a half-written one), swapped in
    by renames; unchanged models are left alone, so a build reading them in another run is undisturbed.
    """
    out = project_dir / "models" / "computed"
    scratch = project_dir / "target"
    with file_lock(scratch / ".computed.lock"):
        # left by a compile killed half-way (none runs now) or by older versions
        for left in [project_dir / "models" / ".computed.tmp", *scratch.glob(".computed.new.*"),
                     *scratch.glob(".computed.old.*")]:
            shutil.rmtree(left, ignore_errors=True)
        if out.is_dir() and {p.name for p in out.iterdir()} == set(files) and all(
                (out / name).read_text() == text for name, text in files.items()):
            return
        staging = Path(tempfile.mkdtemp(prefix=".computed.new.", dir=scratch))
        for name, text in files.items():
            (staging / name).write_text(text)
        staging.chmod(0o755)  # mkdtemp's 0o700 would differ from the folder it replaces
        old = scratch / f".computed.old.{staging.name.rsplit('.', 1)[-1]}"
        if out.exists():
            out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)


def _dependency_order(audiences: list[Audience]) -> list[Audience]:
    done: list[Audience] = []
    remaining = list(audiences)
    while remaining:
        ready = [a for a in remaining if audience_dependencies(a.condition) <= {d.name for d in done}]
        done += ready
        remaining = [a for a in remaining if a not in ready]
    return done
