"""The identity rules (``vars: identity_rules`` in dbt_project.yml) as Python reads them, in one place.

dbt reads the rules in macros/identity/rules.sql (``identifier_source_value``: where each source's
value is in ``int_messages``) and int_identifiers.sql; Python reads them at the landing door (which
lines and contact rows carry an identity, ingestion.py), in the privacy screen (where an erased or
locked identifier can be, privacy_screen.py) and to normalise a value as dbt does (privacy.py,
lookup.py). Every one of them asks this module, so they agree with each other and with the macro
(tests/unit/test_identity_rules.py renders the macro and compares).

A source is one of (as ``identifier_source_value`` accepts them; anything else is an error there too):

- ``userId``, ``anonymousId``: the message's field of that name;
- ``traits.<key>``: an identify call's ``traits`` or another message's ``context.traits`` (dbt's
  ``int_messages.traits`` is the one or the other, so a raw line is read at both);
- ``context.<path>``: the message's ``context``;
- ``column.<name>``: a contact-list column, by its snake_cased header: ``email`` and ``phone`` are
  the list's e-mail and phone columns (``ingestion.EMAIL_COLUMNS``/``PHONE_COLUMNS``), any other a
  key of the row's traits.

An alias's ``previousId`` is a user id or an anonymous id (int_identifiers decides which), so it is
read for both of these types when the rules have them, whatever their sources.

Only what Python needs is read here; priorities, limits, blocklists and junk detection are read by
the dbt models alone. ``on_conflict`` (what an identifier over a junk-detection threshold does:
``junk``, ``latest`` or ``first``, macros/identity/stitching.sql) is read here too, so a misspelt
policy is an error naming its type before any build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# ``normalize`` of an identifier type: macros/identity/normalize.sql, and privacy.normalize_sql.
NORMALIZE_METHODS = ("id", "email", "phone", "lower")
# The Segment fields a source names as a whole.
ID_FIELDS = ("userId", "anonymousId")
# Sources with a key or path after the dot.
PATH_KINDS = ("traits", "context", "column")
# The types an alias's previousId can be (int_identifiers.sql).
PREVIOUS_ID_TYPES = ("user_id", "anonymous_id")
PREVIOUS_ID_PATH = "$.previousId"
# ``on_conflict`` of an identifier type (macros/identity/stitching.sql, identifier_on_conflict_by_type): junk links
# no one; latest / first link only to the neighbour of the exceeded type seen last / first.
ON_CONFLICT_POLICIES = ("junk", "latest", "first")
# The contact-list columns of their own (raw.contacts.email/phone, int_messages.contact_email/phone).
CONTACT_COLUMNS = ("email", "phone")


def snake_case(name: str) -> str:
    """A contact-list header as ingestion keys it (and ``column.<name>`` sources name it)."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_") or "column"


@dataclass(frozen=True)
class Source:
    """One entry of an identifier type's ``sources``."""

    text: str  # as written in the rules
    kind: str  # 'userId', 'anonymousId', 'traits', 'context' or 'column'
    path: str = ""  # what follows ``<kind>.`` ('' for userId and anonymousId)

    @classmethod
    def parse(cls, text: Any, type_name: str) -> "Source":
        if not isinstance(text, str):
            raise ValueError(f"identity_rules: identifier type '{type_name}': a source must be a string, "
                             f"got {text!r}")
        if text in ID_FIELDS:
            return cls(text, text)
        kind, dot, path = text.partition(".")
        if kind not in PATH_KINDS or not dot or not path.strip():
            raise ValueError(f"identity_rules: identifier type '{type_name}': unknown identifier source {text!r} "
                             f"(use userId, anonymousId, traits.<key>, context.<path> or column.<name>)")
        return cls(text, kind, path)

    @property
    def message_paths(self) -> tuple[str, ...]:
        """JSON paths of a raw Segment message where this source's value is."""
        if self.kind in ID_FIELDS:
            return (f"$.{self.kind}",)
        if self.kind == "traits":
            return (f"$.traits.{self.path}", f"$.context.traits.{self.path}")
        if self.kind == "context":
            return (f"$.context.{self.path}",)
        return ()

    @property
    def contact_column(self) -> str | None:
        """The (snake_cased) contact-list column of a ``column.<name>`` source."""
        return snake_case(self.path) if self.kind == "column" else None


@dataclass(frozen=True)
class IdentifierType:
    name: str
    normalize: str  # one of NORMALIZE_METHODS ('id' when the rules say nothing)
    sources: tuple[Source, ...]
    on_conflict: str = "junk"  # one of ON_CONFLICT_POLICIES

    @property
    def message_paths(self) -> tuple[str, ...]:
        """JSON paths of a raw Segment message that carry this type (its sources; not previousId)."""
        return tuple(dict.fromkeys(p for s in self.sources for p in s.message_paths))

    @property
    def contact_columns(self) -> tuple[str, ...]:
        """Contact-list columns (snake_cased) that carry this type."""
        return tuple(dict.fromkeys(s.contact_column for s in self.sources if s.contact_column))

    def reads_trait(self, key: str) -> bool:
        """Whether a ``traits.<key>`` source reads this type (what a landing source's staging maps)."""
        return any(s.kind == "traits" and s.path == key for s in self.sources)


@dataclass(frozen=True)
class IdentityRules:
    """The identifier types of the rules, in their order (the order dbt builds its branches in)."""

    types: dict[str, IdentifierType]
    raw: dict  # the rules as given (phone settings are read by privacy.normalize_sql)

    @classmethod
    def parse(cls, rules: "dict | IdentityRules") -> "IdentityRules":
        """The rules checked; a ValueError names the type and what is wrong with it."""
        if isinstance(rules, IdentityRules):
            return rules
        declared = rules.get("identifier_types") or {}
        if not isinstance(declared, dict):
            raise ValueError("identity_rules: identifier_types must be a mapping of type name → rule")
        types = {}
        for name, rule in declared.items():
            rule = rule or {}
            if not isinstance(rule, dict):
                raise ValueError(f"identity_rules: identifier type '{name}' must be a mapping, got {rule!r}")
            method = rule.get("normalize", "id")
            if method not in NORMALIZE_METHODS:
                raise ValueError(f"identity_rules: identifier type '{name}': unknown normalize {method!r} "
                                 f"(use one of {', '.join(NORMALIZE_METHODS)})")
            sources = rule.get("sources") or []
            if isinstance(sources, str) or not isinstance(sources, list):
                raise ValueError(f"identity_rules: identifier type '{name}': sources must be a list, got {sources!r}")
            on_conflict = rule.get("on_conflict", "junk")
            if on_conflict not in ON_CONFLICT_POLICIES:
                raise ValueError(f"identity_rules: identifier type '{name}': unknown on_conflict {on_conflict!r} "
                                 f"(use one of {', '.join(ON_CONFLICT_POLICIES)})")
            types[name] = IdentifierType(name, method, tuple(Source.parse(s, name) for s in sources), on_conflict)
        return cls(types, rules)

    def normalize(self, type_name: str) -> str:
        return self.types[type_name].normalize

    def message_fields(self) -> list[tuple[str, str]]:
        """(identifier type, JSON path) of every place a raw Segment message carries an identifier:
        an alias's previousId as a user or anonymous id, then each type's sources."""
        fields = [(t, PREVIOUS_ID_PATH) for t in PREVIOUS_ID_TYPES if t in self.types]
        fields += [(t.name, p) for t in self.types.values() for p in t.message_paths]
        return list(dict.fromkeys(fields))

    def contact_fields(self) -> list[tuple[str, str]]:
        """(identifier type, snake_cased contact-list column) of every ``column.<name>`` source;
        ``email`` and ``phone`` are the list's own columns (CONTACT_COLUMNS), others trait keys."""
        return [(t.name, c) for t in self.types.values() for c in t.contact_columns]
