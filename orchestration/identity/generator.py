"""Synthetic landing data with ground truth, the way real sources send it, at any scale.

Each person browses anonymously on one to three devices (a web browser may reset its cookie and get
a new anonymous id), may give an e-mail before signing up, signs up on one device (identify with
``userId``, ``anonymousId`` and traits, sometimes an alias call), logs in on some of the others, and
may change e-mail later. Some appear in a CRM export with the e-mail and phone typed the way people
type them. Around them, what breaks weak identity resolution: household devices shared by two
signed-up people, an anonymous id a client bug sends for everyone, a store's placeholder e-mail in
CRM rows, placeholder e-mails (``test@test.com``) typed on the devices of a few strangers each (2, 3, 5,
10 or 25 of them per value, some of whom sign up), duplicate deliveries, malformed lines and messages
with no identity.

People are generated one at a time and written as they come, so memory stays flat for millions.
Beside the landing files, ``truth/`` says which person each identifier, message and contact row belongs to
(``kind`` = personal, or shared/junk for identifiers that belong to no single person) and
``truth/summary.json`` counts what was injected.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
               "Maya", "Noah", "Omar", "Pia", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Victor", "Wen", "Yara", "Zane"]
LAST_NAMES = ["Adams", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
              "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example"]
AREA_CODES = ["212", "305", "312", "415", "617", "646", "702", "808"]
PAGES = ["Home", "Pricing", "Features", "Blog", "About", "Docs"]
SCREENS = ["Home", "Catalog", "Product", "Cart", "Settings"]
EVENTS = [("Product Viewed", {"product_id": "sku-{n}"}), ("Product Added To Cart", {"product_id": "sku-{n}"}),
          ("Search Performed", {"query": "plan {n}"}), ("Video Played", {"video_id": "v{n}"})]
PLACEHOLDER_EMAIL = "noemail@store.example"
# Placeholders people type into a form instead of their e-mail; each group of strangers gets its own
# value (the n-th group: ``test@test3.example``), its size the next of TYPED_PLACEHOLDER_GROUPS.
TYPED_PLACEHOLDERS = ["test@test{n}.example", "none@none{n}.example", "noreply@store{n}.example", "x@x{n}.example"]
TYPED_PLACEHOLDER_GROUPS = [2, 3, 5, 10, 25]


@dataclass(frozen=True)
class Rates:
    """How often each behaviour happens (per person, per message or per contact row)."""

    signs_up: float = 0.65
    has_email: float = 0.75
    has_phone: float = 0.4
    cookie_reset: float = 0.12
    email_before_signup: float = 0.3
    logs_in_elsewhere: float = 0.6
    alias_at_signup: float = 0.1
    changes_email: float = 0.08
    orders: float = 0.45
    in_crm_export: float = 0.2
    shares_household_device: float = 0.03
    client_bug_message: float = 0.004
    placeholder_email_row: float = 0.05
    types_placeholder_email: float = 0.02
    duplicate_delivery: float = 0.01
    malformed_line: float = 0.001
    no_identity_message: float = 0.001


@dataclass
class PersonData:
    """What one person contributes: landing lines, contact rows and their truth."""

    lines: list[str] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)
    identifiers: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, value) → kind
    messages: list[str] = field(default_factory=list)


def typed_phone(rng: random.Random, e164: str) -> str:
    """The way a person might type a North American number."""
    area, exchange, line = e164[2:5], e164[5:8], e164[8:]
    return rng.choice([
        f"({area}) {exchange}-{line}", f"{area}.{exchange}.{line}", f"+1 {area} {exchange} {line}",
        f"1-{area}-{exchange}-{line}", f"{area}{exchange}{line}",
    ])


def typed_email(rng: random.Random, email: str) -> str:
    return rng.choice([email, email.upper(), f" {email} ", email.title()])


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Generator:
    def __init__(self, seed: int = 7, start: datetime | None = None, days: int = 30, rates: Rates | None = None):
        self.seed = seed
        self.rng = random.Random(seed)
        self.start = start or datetime(2024, 1, 1, tzinfo=timezone.utc)
        self.days = days
        self.rates = rates or Rates()
        self.sequence = 0
        self.bug_anonymous_id = self._uuid()
        self.household_device: str | None = None  # the last person's web device, for a household
        # Who types a placeholder is drawn apart, so the rest of the data does not move with its rate.
        self.placeholder_rng = random.Random(seed * 7919 + 13)
        self.placeholder_groups = 0
        self.placeholder_left = 0  # strangers still to type the current group's placeholder
        self.injected: Counter = Counter()

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def people(self, count: int, start: int = 0) -> Iterator[tuple[str, PersonData]]:
        """People number ``start`` … ``start + count - 1`` (their e-mails carry the number: generators
        with different seeds and disjoint ranges can write one landing folder in parallel)."""
        for index in range(start, start + count):
            yield f"person-{self.seed}-{index:07d}", self._person(index)

    def _emit(self, data: PersonData, message: dict, at: datetime) -> None:
        rng, rates = self.rng, self.rates
        self.sequence += 1
        message_id = f"gen-{self.seed}-{self.sequence:08d}"
        if "userId" in message and rng.random() < rates.client_bug_message:
            message["anonymousId"] = self.bug_anonymous_id  # a client bug sends one id for everyone
            data.identifiers[("anonymous_id", self.bug_anonymous_id)] = "junk"
            self.injected["client_bug_messages"] += 1
        skew = timedelta(seconds=rng.choice([0, 0, 0, 2, -45]))  # some device clocks are off
        sent = at + timedelta(seconds=rng.randint(0, 5))
        received = sent + timedelta(milliseconds=rng.randint(20, 900))
        line = json.dumps({
            **message, "messageId": message_id, "originalTimestamp": _iso(at + skew),
            "sentAt": _iso(sent + skew), "receivedAt": _iso(received), "timestamp": _iso(at),
        }, separators=(",", ":"))
        data.lines.append(line)
        data.messages.append(message_id)
        if rng.random() < rates.duplicate_delivery:
            data.lines.append(line)
            self.injected["duplicate_deliveries"] += 1
        if rng.random() < rates.malformed_line:
            data.lines.append(line[: len(line) // 2])
            self.injected["malformed_lines"] += 1
        if rng.random() < rates.no_identity_message:
            data.lines.append(json.dumps({"type": "track", "event": "Heartbeat", "timestamp": _iso(at)}))
            self.injected["no_identity_messages"] += 1

    def _typed_placeholder(self) -> str | None:
        """The placeholder e-mail this person types, if they are one of a group of strangers who do."""
        if self.placeholder_rng.random() >= self.rates.types_placeholder_email:
            return None
        if self.placeholder_left == 0:
            self.placeholder_groups += 1
            self.placeholder_left = TYPED_PLACEHOLDER_GROUPS[(self.placeholder_groups - 1) % len(TYPED_PLACEHOLDER_GROUPS)]
            self.injected["typed_placeholders"] += 1
        self.placeholder_left -= 1
        pattern = TYPED_PLACEHOLDERS[(self.placeholder_groups - 1) % len(TYPED_PLACEHOLDERS)]
        return pattern.format(n=self.placeholder_groups)

    def _person(self, index: int) -> PersonData:
        rng, rates = self.rng, self.rates
        data = PersonData()
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}{index}@{rng.choice(DOMAINS)}".lower() if rng.random() < rates.has_email else None
        phone = f"+1{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{index % 10000:04d}" if rng.random() < rates.has_phone else None
        user_id = f"u{self.seed}x{rng.getrandbits(40):010x}" if rng.random() < rates.signs_up else None

        devices = [(channel, self._uuid()) for channel in rng.sample(["web", "ios", "android"], rng.choice([1, 1, 2, 2, 3]))]
        if devices[0][0] == "web" and rng.random() < rates.cookie_reset:
            devices.append(("web", self._uuid()))
        shared = None
        if user_id and self.household_device and rng.random() < rates.shares_household_device:
            shared = self.household_device  # the previous person's laptop, used by this person too
            devices.append(("web", shared))
            self.household_device = None
            self.injected["household_devices"] += 1
        elif user_id and devices[0][0] == "web":
            self.household_device = devices[0][1]

        for _, anonymous_id in devices:
            data.identifiers.setdefault(("anonymous_id", anonymous_id), "personal")
        if shared:
            data.identifiers[("anonymous_id", shared)] = "shared"

        placeholder, placeholder_device = self._typed_placeholder(), None
        if placeholder:
            placeholder_device = self.placeholder_rng.randrange(len(devices))
            data.identifiers[("email", placeholder)] = "junk"
            self.injected["typed_placeholder_devices"] += 1

        clock = self.start + timedelta(seconds=rng.randint(0, self.days * 86400 // 2))
        signed_up = False
        signup_device = rng.randrange(len(devices))
        for position, (channel, anonymous_id) in enumerate(devices):
            for _ in range(rng.randint(1, 4)):  # a few sessions
                clock += timedelta(minutes=rng.randint(5, 3000))
                if channel == "web":
                    page = {"type": "page", "anonymousId": anonymous_id, "name": rng.choice(PAGES),
                            "context": {"library": {"name": "analytics.js"}}}
                else:
                    page = {"type": "screen", "anonymousId": anonymous_id, "name": rng.choice(SCREENS),
                            "context": {"library": {"name": f"analytics-{channel}"}}}
                self._emit(data, page, clock)
                name, properties = rng.choice(EVENTS)
                self._emit(data, {"type": "track", "anonymousId": anonymous_id, "event": name,
                                  "properties": {k: v.format(n=rng.randint(1, 50)) for k, v in properties.items()},
                                  **({"userId": user_id} if signed_up else {})}, clock + timedelta(seconds=30))
            if position == placeholder_device and anonymous_id != shared:
                # a newsletter box or a checkout form, filled in with a placeholder, before any sign-up here
                self._emit(data, {"type": "identify", "anonymousId": anonymous_id, "traits": {"email": placeholder}},
                           clock + timedelta(seconds=50))
            if email and not signed_up and anonymous_id != shared and rng.random() < rates.email_before_signup:
                self._emit(data, {"type": "identify", "anonymousId": anonymous_id, "traits": {"email": email}},
                           clock + timedelta(minutes=1))
                data.identifiers[("email", email)] = "personal"
            if user_id and position == signup_device and not signed_up:
                traits = {"first_name": first, "last_name": last, "plan": rng.choice(["free", "pro", "team"])}
                traits.update({"email": email} if email else {})
                traits.update({"phone": typed_phone(rng, phone)} if phone else {})
                self._emit(data, {"type": "identify", "userId": user_id, "anonymousId": anonymous_id,
                                  "traits": traits}, clock + timedelta(minutes=2))
                self._emit(data, {"type": "track", "userId": user_id, "anonymousId": anonymous_id,
                                  "event": "Signed Up"}, clock + timedelta(minutes=2, seconds=1))
                if rng.random() < rates.alias_at_signup:
                    self._emit(data, {"type": "alias", "previousId": anonymous_id, "userId": user_id},
                               clock + timedelta(minutes=2, seconds=2))
                signed_up = True
                data.identifiers[("user_id", user_id)] = "personal"
                data.identifiers.update({key: "personal" for key in [("email", email), ("phone", phone)] if key[1]})
            elif user_id and signed_up and (anonymous_id == shared or rng.random() < rates.logs_in_elsewhere):
                self._emit(data, {"type": "identify", "userId": user_id, "anonymousId": anonymous_id},
                           clock + timedelta(minutes=3))
        if signed_up and rng.random() < rates.orders:
            for _ in range(rng.choice([1, 1, 2, 3])):
                clock += timedelta(hours=rng.randint(1, 200))
                self._emit(data, {"type": "track", "userId": user_id, "event": "Order Completed", "properties": {
                    "order_id": f"o-{self._uuid()[:8]}", "revenue": round(rng.uniform(5, 250), 2), "currency": "USD"}},
                    clock)
        if user_id and not signed_up:  # the sign-up device came first but was the shared one: sign up now
            self._emit(data, {"type": "identify", "userId": user_id, "traits": {"first_name": first}}, clock)
            data.identifiers[("user_id", user_id)] = "personal"
        if signed_up and email and rng.random() < rates.changes_email:
            new_email = f"{first}.{last}{index}.new@{rng.choice(DOMAINS)}".lower()
            clock += timedelta(days=rng.randint(1, 20))
            self._emit(data, {"type": "identify", "userId": user_id, "traits": {"email": new_email}}, clock)
            data.identifiers[("email", new_email)] = "personal"
            self.injected["email_changes"] += 1

        if (email or phone) and rng.random() < rates.in_crm_export:
            placeholder = email and rng.random() < rates.placeholder_email_row
            data.contacts.append({
                "email": PLACEHOLDER_EMAIL if placeholder else (typed_email(rng, email) if email else ""),
                "phone": typed_phone(rng, phone) if phone else "",
                "first_name": first, "last_name": last,
                "created_at": (self.start + timedelta(days=rng.randint(0, self.days))).date().isoformat(),
            })
            if placeholder:
                data.identifiers[("email", PLACEHOLDER_EMAIL)] = "junk"
                self.injected["placeholder_email_rows"] += 1
            else:
                data.identifiers.update({key: "personal" for key in [("email", email)] if key[1]})
            data.identifiers.update({key: "personal" for key in [("phone", phone)] if key[1]})
        return data


def write_landing(out: Path, people: int, seed: int = 7, days: int = 30, files: int = 4,
                  list_name: str = "crm_export", rates: Rates | None = None, start_index: int = 0) -> dict:
    """Generate ``people`` people into the landing folder ``out``; returns the summary.

    Events go to ``events/generated-<seed>/part-NNN.jsonl.gz`` (each person's lines to a random
    part, as deliveries arrive), contacts to ``contacts/<list_name>.csv``, the truth to ``truth/``.
    """
    generator = Generator(seed=seed, days=days, rates=rates)
    rng = random.Random(seed + 1)
    events_dir = out / "events" / f"generated-{seed}"
    events_dir.mkdir(parents=True, exist_ok=True)
    (out / "contacts").mkdir(parents=True, exist_ok=True)
    truth_dir = out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    # Fast compression: at millions of people, level 9 would cost more than generating the data.
    parts = [gzip.open(events_dir / f"part-{part:03d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=1)
             for part in range(files)]
    shared_kinds: dict[tuple[str, str], str] = {}
    counts: Counter = Counter()
    contact_columns = ["email", "phone", "first_name", "last_name", "created_at"]
    try:
        with (out / "contacts" / f"{list_name}.csv").open("w", newline="", encoding="utf-8") as contacts_file, \
                (truth_dir / f"identifiers-{seed}.csv").open("w", newline="", encoding="utf-8") as identifiers_file, \
                (truth_dir / f"messages-{seed}.csv").open("w", newline="", encoding="utf-8") as messages_file, \
                (truth_dir / f"contacts-{seed}.csv").open("w", newline="", encoding="utf-8") as contact_rows_file:
            contacts = csv.DictWriter(contacts_file, fieldnames=contact_columns)
            contacts.writeheader()
            identifiers = csv.writer(identifiers_file)
            identifiers.writerow(["identifier_type", "identifier_value", "person_id", "kind"])
            messages = csv.writer(messages_file)
            messages.writerow(["message_id", "person_id"])
            contact_rows = csv.writer(contact_rows_file)
            contact_rows.writerow(["list_name", "row_number", "person_id"])
            for person_id, data in generator.people(people, start=start_index):
                for line in data.lines:
                    parts[rng.randrange(files)].write(line + "\n")
                contacts.writerows(data.contacts)
                contact_rows.writerows([list_name, counts["contact_rows"] + offset, person_id]
                                       for offset in range(1, len(data.contacts) + 1))
                for (identifier_type, value), kind in sorted(data.identifiers.items()):
                    if kind == "personal":
                        identifiers.writerow([identifier_type, value, person_id, kind])
                    else:  # shared and junk identifiers belong to no single person: listed once, below
                        shared_kinds[(identifier_type, value)] = kind
                messages.writerows([message_id, person_id] for message_id in data.messages)
                counts["people"] += 1
                counts["messages"] += len(data.messages)
                counts["lines"] += len(data.lines)
                counts["contact_rows"] += len(data.contacts)
            for (identifier_type, value), kind in sorted(shared_kinds.items()):
                identifiers.writerow([identifier_type, value, "", kind])
    finally:
        for part in parts:
            part.close()
    summary = {"seed": seed, **counts, **generator.injected}
    (truth_dir / f"summary-{seed}.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
