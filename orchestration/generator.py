"""Synthetic landing data with ground truth: people on several devices, as real sources send them.

Each person browses anonymously on one to three devices (a web browser may reset its cookie and get
a new anonymous id), may give an e-mail before signing up, signs up on one device (identify with
``userId``, ``anonymousId`` and traits), and logs in on some of the others. Some appear in a CRM
export with the e-mail and phone typed the way people type them. Beside the landing files the
generator writes the truth: which person each identifier and each message belongs to.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import uuid
from collections import defaultdict
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


@dataclass
class Person:
    person_id: str
    name: tuple[str, str]
    email: str | None
    phone: str | None  # E.164
    user_id: str | None
    devices: list[tuple[str, str]] = field(default_factory=list)  # (channel, anonymous id)


@dataclass
class GeneratedData:
    messages: list[dict]
    contacts: list[dict]
    truth_identifiers: dict[tuple[str, str], str]  # (type, normalised value) → person
    truth_messages: dict[str, str]  # message id → person


def typed_phone(rng: random.Random, e164: str) -> str:
    """The way a person might type a North American number."""
    area, exchange, line = e164[2:5], e164[5:8], e164[8:]
    return rng.choice([
        f"({area}) {exchange}-{line}", f"{area}.{exchange}.{line}", f"+1 {area} {exchange} {line}",
        f"1-{area}-{exchange}-{line}", f"{area}{exchange}{line}",
    ])


def typed_email(rng: random.Random, email: str) -> str:
    return rng.choice([email, email.upper(), f" {email} ", email.title()])


def generate(people: int, seed: int = 7, start: datetime | None = None, days: int = 30) -> GeneratedData:
    rng = random.Random(seed)
    start = start or datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = GeneratedData([], [], {}, {})
    uid = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))  # noqa: E731 (seeded uuid4)
    sequence = 0

    def emit(person: Person, message: dict, at: datetime) -> None:
        nonlocal sequence
        sequence += 1
        message_id = f"gen-{seed}-{sequence:07d}"
        skew = timedelta(seconds=rng.choice([0, 0, 0, 2, -45]))  # some device clocks are off
        sent = at + timedelta(seconds=rng.randint(0, 5))
        received = sent + timedelta(milliseconds=rng.randint(20, 900))
        iso = lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
        data.messages.append({
            **message, "messageId": message_id,
            "originalTimestamp": iso(at + skew), "sentAt": iso(sent + skew), "receivedAt": iso(received),
            "timestamp": iso(at),
        })
        data.truth_messages[message_id] = person.person_id

    for index in range(people):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}{index}@{rng.choice(DOMAINS)}".lower() if rng.random() < 0.75 else None
        phone = f"+1{rng.choice(AREA_CODES)}555{index % 10000:04d}" if rng.random() < 0.4 else None
        person = Person(f"person-{index:06d}", (first, last), email, phone,
                        f"u{rng.getrandbits(40):010x}" if rng.random() < 0.65 else None)
        for channel in rng.sample(["web", "ios", "android"], rng.choice([1, 1, 2, 2, 3])):
            person.devices.append((channel, uid()))
        if rng.random() < 0.12 and person.devices[0][0] == "web":  # a cookie reset: a second web id
            person.devices.append(("web", uid()))

        clock = start + timedelta(seconds=rng.randint(0, days * 86400 // 2))
        signed_up = gave_email = False
        signup_device = rng.randrange(len(person.devices))
        for position, (channel, anonymous_id) in enumerate(person.devices):
            for _ in range(rng.randint(1, 4)):  # a few anonymous sessions
                clock += timedelta(minutes=rng.randint(5, 3000))
                if channel == "web":
                    emit(person, {"type": "page", "anonymousId": anonymous_id, "name": rng.choice(PAGES),
                                  "context": {"library": {"name": "analytics.js"}}}, clock)
                else:
                    emit(person, {"type": "screen", "anonymousId": anonymous_id, "name": rng.choice(SCREENS),
                                  "context": {"library": {"name": f"analytics-{channel}"}}}, clock)
                name, properties = rng.choice(EVENTS)
                emit(person, {"type": "track", "anonymousId": anonymous_id, "event": name,
                              "properties": {k: v.format(n=rng.randint(1, 50)) for k, v in properties.items()},
                              **({"userId": person.user_id} if signed_up else {})}, clock + timedelta(seconds=30))
            if person.email and not signed_up and rng.random() < 0.3:  # newsletter before signing up
                emit(person, {"type": "identify", "anonymousId": anonymous_id, "traits": {"email": person.email}},
                     clock + timedelta(minutes=1))
                gave_email = True
            if person.user_id and position == signup_device:
                traits = {"first_name": first, "last_name": last, "plan": rng.choice(["free", "pro", "team"])}
                traits.update({"email": person.email} if person.email else {})
                traits.update({"phone": typed_phone(rng, person.phone)} if person.phone else {})
                emit(person, {"type": "identify", "userId": person.user_id, "anonymousId": anonymous_id,
                              "traits": traits}, clock + timedelta(minutes=2))
                emit(person, {"type": "track", "userId": person.user_id, "anonymousId": anonymous_id,
                              "event": "Signed Up"}, clock + timedelta(minutes=2, seconds=1))
                signed_up = True
            elif person.user_id and signed_up and rng.random() < 0.6:  # logs in on this device too
                emit(person, {"type": "identify", "userId": person.user_id, "anonymousId": anonymous_id},
                     clock + timedelta(minutes=3))

        carried = {("anonymous_id", anonymous_id) for _, anonymous_id in person.devices}
        if signed_up:
            carried.add(("user_id", person.user_id))
        carried |= {("email", person.email)} if person.email and (signed_up or gave_email) else set()
        carried |= {("phone", person.phone)} if person.phone and signed_up else set()
        data.truth_identifiers.update({key: person.person_id for key in carried})
        if (person.email or person.phone) and rng.random() < 0.2:
            data.contacts.append({
                "email": typed_email(rng, person.email) if person.email else "",
                "phone": typed_phone(rng, person.phone) if person.phone else "",
                "first_name": first, "last_name": last,
                "created_at": (start + timedelta(days=rng.randint(0, days))).date().isoformat(),
            })
            data.truth_identifiers.update(
                {key: person.person_id for key in [("email", person.email), ("phone", person.phone)] if key[1]})
    return data


def write_landing(data: GeneratedData, out: Path, files: int = 4, list_name: str = "crm_export") -> None:
    """Events as ``events/generated/part-NNN.jsonl.gz`` (shuffled over files, as they arrive),
    contacts as ``contacts/<list_name>.csv``, the truth under ``truth/``."""
    rng = random.Random(len(data.messages))
    parts: dict[int, list[dict]] = defaultdict(list)
    for message in data.messages:
        parts[rng.randrange(files)].append(message)
    events_dir = out / "events" / "generated"
    events_dir.mkdir(parents=True, exist_ok=True)
    for part, messages in sorted(parts.items()):
        with gzip.open(events_dir / f"part-{part:03d}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for message in messages:
                handle.write(json.dumps(message, separators=(",", ":")) + "\n")
    if data.contacts:
        (out / "contacts").mkdir(parents=True, exist_ok=True)
        with (out / "contacts" / f"{list_name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(data.contacts[0]))
            writer.writeheader()
            writer.writerows(data.contacts)
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    with (truth / "identifiers.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["identifier_type", "identifier_value", "person_id"])
        writer.writerows(sorted((t, v, p) for (t, v), p in data.truth_identifiers.items()))
    with (truth / "messages.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message_id", "person_id"])
        writer.writerows(sorted(data.truth_messages.items()))
