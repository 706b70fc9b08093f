"""The privacy screen at the landing door: lines carrying an erased (``erased_identity``) or a
locked (``locked_identity``) identifier are rejected before they reach a raw table.

Every landing source goes through the same screen: Segment events and contact lists carry
identifiers where the identity rules read them; a registered source (``vars: landing_sources``)
where its ``identifiers`` say, and a source that declares none is screened on every quoted string
of its records (as rejected lines are: they were never parsed). Rejected lines keep their file and
line number, never their text: the text is what was erased.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from orchestration.core.warehouse import quote_literal
from orchestration.identity.rules import CONTACT_COLUMNS, IdentityRules
from orchestration.landing.sources import LandingSource
from orchestration.privacy.requests import (
    ERASED_REASON,
    LOCKED_REASON,
    create_privacy_tables,
    hash_sql,
    normalize_by_type_sql,
)

# A quoted string of a line: every one may be an identifier (erasure.py reads rejected lines alike).
QUOTED_TOKENS = "regexp_extract_all(line, '\"([^\"\\\\]{1,320})\"', 1)"


# Every erased or locked identifier (hashed), and why: what the screen rejects.
SCREENED_SQL = f"""
    select identifier_type, identifier_hash, {quote_literal(ERASED_REASON)} as reason from privacy.tombstones
    union all
    select identifier_type, identifier_hash, {quote_literal(LOCKED_REASON)} from privacy.locks
"""


def message_fields(rules: "dict | IdentityRules") -> list[tuple[str, str]]:
    """(identifier type, JSON path) of every place a Segment message can carry an identifier."""
    return IdentityRules.parse(rules).message_fields()


def contact_fields(rules: "dict | IdentityRules") -> list[tuple[str, str]]:
    """(identifier type, SQL on ``landing_contacts``) of every contact-list column an identity rule reads."""
    return [(name, column if column in CONTACT_COLUMNS else
             f"json_extract_string(traits, {quote_literal('$.' + column)})")
            for name, column in IdentityRules.parse(rules).contact_fields()]


@dataclass
class PrivacyScreen:
    salt: str
    rules: IdentityRules

    @classmethod
    def load(cls, conn, salt: str, rules: "dict | IdentityRules") -> "PrivacyScreen | None":
        """The screen, or None when nothing is erased or locked (the usual case: no cost)."""
        create_privacy_tables(conn)
        conn.execute(f"create or replace temp table privacy_screen as {SCREENED_SQL}")
        return cls._if_any(conn, salt, rules)

    @classmethod
    def from_rows(cls, conn, salt: str, rules: "dict | IdentityRules",
                  rows: list[tuple[str, str, str]]) -> "PrivacyScreen | None":
        """The screen of ``rows`` (``SCREENED_SQL``'s, read from another database): Spark's landing
        tasks screen with what the DuckDB file's privacy tables hold."""
        conn.execute("create or replace temp table privacy_screen "
                     "(identifier_type varchar, identifier_hash varchar, reason varchar)")
        if rows:
            conn.executemany("insert into privacy_screen values (?, ?, ?)", rows)
        return cls._if_any(conn, salt, rules)

    @classmethod
    def _if_any(cls, conn, salt: str, rules: "dict | IdentityRules") -> "PrivacyScreen | None":
        if not conn.execute("select count(*) from privacy_screen").fetchall()[0][0]:
            conn.execute("drop table privacy_screen")
            return None
        return cls(salt, IdentityRules.parse(rules))

    def hits_sql(self, identifiers_sql: str) -> str:
        """Per line, the strongest reason among its identifiers (erased before locked)."""
        normalized = normalize_by_type_sql("identifiers.identifier_type", "identifiers.raw_value", self.rules)
        return f"""
        select line_number, min(screen.reason) as reason
        from ({identifiers_sql}) as identifiers
        join privacy_screen as screen
          on screen.identifier_type = identifiers.identifier_type
         and screen.identifier_hash = {hash_sql('$salt', 'identifiers.identifier_type', normalized)}
        where raw_value is not null
        group by line_number
        """

    def screen(self, conn, kind: str, context: dict, source: LandingSource | None = None) -> Counter:
        """Applies the screen to the staged file (``landing_lines``, ``landing_records`` or
        ``landing_contacts``); returns the rejections it wrote itself (contact rows; the lines of
        events and registered sources are counted by their writer)."""
        if source is not None:
            self._screen_lines(conn, "landing_records", source.identifier_expressions("line") or None)
        elif kind == "events":
            self._screen_lines(conn, "landing_lines", self.event_fields())
        elif conn.execute("select count(*) from duckdb_tables() where temporary and table_name = 'landing_contacts'").fetchone()[0]:
            return self._screen_contacts(conn, context)
        return Counter()

    def _tokens_sql(self, table: str, where: str) -> str:
        types = ", ".join(quote_literal(t) for t in self.rules.types)
        return f"""
            select line_number, unnest([{types}]) as identifier_type, raw_value
            from (select line_number, unnest({QUOTED_TOKENS}) as raw_value from {table} where {where})
        """

    def event_fields(self) -> list[tuple[str, str]]:
        """(type, SQL over ``line``) of every place a Segment message carries an identifier."""
        return [(t, f"json_extract_string(line, {quote_literal(p)})") for t, p in message_fields(self.rules)]

    def line_identifiers_sql(self, table: str, fields: list[tuple[str, str]] | None, where: str) -> str:
        """(line_number, identifier_type, raw_value) of the lines of ``table`` that meet ``where``:
        at ``fields`` (type, SQL over ``line``), or, when None, every quoted token as any type."""
        if not fields:
            return self._tokens_sql(table, where)
        structs = ", ".join(
            f"{{identifier_type: {quote_literal(t)}, raw_value: {expr}}}"
            for t, expr in fields if t in self.rules.types)
        return f"select line_number, unnest([{structs}], recursive := true) from {table} where {where}"

    def contact_identifiers_sql(self, table: str = "landing_contacts") -> str | None:
        """(line_number, identifier_type, raw_value) of the contact rows of ``table`` (line_number,
        email, phone, traits), where the identity rules read them; None when no rule reads any."""
        fields = contact_fields(self.rules)
        return " union all ".join(
            f"select line_number, {quote_literal(t)} as identifier_type, {expr}::varchar as raw_value from {table}"
            for t, expr in fields) or None

    def _screen_lines(self, conn, table: str, fields: list[tuple[str, str]] | None) -> None:
        """``fields`` (type, SQL over ``line``) says where a line carries identifiers; None: anywhere."""
        identifiers = self.line_identifiers_sql(table, fields, "reason is null and not is_blank")
        conn.execute(
            f"""
            update {table} set reason = hits.reason, line = null
            from ({self.hits_sql(identifiers)}) as hits
            where {table}.line_number = hits.line_number
            """, {"salt": self.salt})
        # Lines rejected for another reason (malformed JSON, ...) keep their reason, not their text.
        conn.execute(
            f"""
            update {table} set line = null
            from ({self.hits_sql(self._tokens_sql(table, 'reason is not null and line is not null'))}) as hits
            where {table}.line_number = hits.line_number and hits.reason = {quote_literal(ERASED_REASON)}
            """, {"salt": self.salt})

    def _screen_contacts(self, conn, context: dict) -> Counter:
        identifiers = self.contact_identifiers_sql()
        if identifiers is None:
            return Counter()
        conn.execute(f"create or replace temp table privacy_contact_hits as {self.hits_sql(identifiers)}",
                     {"salt": self.salt})
        conn.execute(
            f"""
            insert into raw.rejected_records
            select $load_id, $file_path, line_number, null, reason,
                   case reason when {quote_literal(ERASED_REASON)} then 'an identifier of this row was erased by a privacy request'
                               else 'an identifier of this row is locked by a privacy request' end, $loaded_at
            from privacy_contact_hits order by line_number
            """,
            {"load_id": context["load_id"], "file_path": context["file_path"], "loaded_at": context["loaded_at"]})
        rejected = Counter(dict(conn.execute("select reason, count(*) from privacy_contact_hits group by 1").fetchall()))
        conn.execute("delete from landing_contacts where line_number in (select line_number from privacy_contact_hits)")
        conn.execute("drop table privacy_contact_hits")
        return rejected
