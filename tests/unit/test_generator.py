import csv
import gzip
import json

from orchestration.identity.generator import Generator, Rates, write_landing


def test_same_seed_same_people():
    first = [data.lines for _, data in Generator(seed=3).people(30)]
    second = [data.lines for _, data in Generator(seed=3).people(30)]
    assert first == second
    assert [data.lines for _, data in Generator(seed=4).people(30)] != first


def test_people_behave_like_real_visitors():
    people = [data for _, data in Generator(seed=1).people(400)]
    messages = [json.loads(line) for data in people for line in data.lines if line.endswith("}")]
    devices = [sum(1 for (t, _), kind in data.identifiers.items() if t == "anonymous_id") for data in people]
    assert max(devices) >= 3  # several devices and cookie resets
    assert any(m["type"] == "identify" and "userId" in m and "anonymousId" in m for m in messages)  # sign-up
    assert any(m["type"] == "identify" and "userId" not in m and "email" in m.get("traits", {}) for m in messages)
    assert any(m["type"] == "alias" for m in messages)
    assert any(data.contacts for data in people)


def test_injected_faults_are_counted_and_marked_in_the_truth(tmp_path):
    rates = Rates(shares_household_device=0.5, client_bug_message=0.05, placeholder_email_row=0.5,
                  duplicate_delivery=0.05, malformed_line=0.02, no_identity_message=0.02, changes_email=0.5)
    summary = write_landing(tmp_path, 200, seed=5, files=3, rates=rates)
    for key in ("household_devices", "client_bug_messages", "placeholder_email_rows", "duplicate_deliveries",
                "malformed_lines", "no_identity_messages", "email_changes"):
        assert summary[key] > 0, key
    with open(tmp_path / "truth" / "identifiers-5.csv", newline="") as handle:
        kinds = {(row["identifier_type"], row["identifier_value"]): row["kind"] for row in csv.DictReader(handle)
                 if row["kind"] != "personal"}
    assert ("email", "noemail@store.example") in kinds
    assert "shared" in kinds.values() and "junk" in kinds.values()

    lines = []
    for part in sorted((tmp_path / "events" / "generated-5").glob("part-*.jsonl.gz")):
        with gzip.open(part, "rt") as handle:
            lines += handle.read().splitlines()
    assert len(lines) == summary["lines"]
    malformed = sum(1 for line in lines if not line.endswith("}"))
    assert malformed == summary["malformed_lines"]
    with open(tmp_path / "truth" / "messages-5.csv", newline="") as handle:
        assert sum(1 for _ in handle) - 1 == summary["messages"]


def test_placeholders_are_typed_on_the_devices_of_groups_of_strangers():
    from collections import defaultdict

    from orchestration.identity.generator import TYPED_PLACEHOLDER_GROUPS

    generator = Generator(seed=2, rates=Rates(types_placeholder_email=0.2))
    typed_by = defaultdict(set)  # placeholder → people who typed it on a device, anonymously
    signed_up = set()
    for person, data in generator.people(600):
        for line in data.lines:
            message = json.loads(line) if line.endswith("}") else {}
            email = message.get("traits", {}).get("email", "")
            if data.identifiers.get(("email", email)) == "junk" and "anonymousId" in message and "userId" not in message:
                typed_by[email].add(person)
        signed_up |= {person for kind, _ in data.identifiers if kind == "user_id"}
    sizes = sorted(len(people) for people in typed_by.values())
    assert set(sizes) >= set(TYPED_PLACEHOLDER_GROUPS[:4])  # several scales: 2, 3, 5, 10 strangers
    assert generator.injected["typed_placeholders"] == len(typed_by)
    assert any(people & signed_up and people - signed_up for people in typed_by.values())  # some sign up
