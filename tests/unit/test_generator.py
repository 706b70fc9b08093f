from orchestration.generator import generate, write_landing


def test_same_seed_same_data_and_truth_for_every_message():
    first, second = generate(40, seed=3), generate(40, seed=3)
    assert first.messages == second.messages and first.contacts == second.contacts
    assert {m["messageId"] for m in first.messages} == set(first.truth_messages)
    assert generate(40, seed=4).messages != first.messages


def test_people_use_several_devices_and_sign_up(tmp_path):
    data = generate(200, seed=1)
    people_by_anonymous_id = {v: p for (t, v), p in data.truth_identifiers.items() if t == "anonymous_id"}
    devices_per_person = {}
    for anonymous_id, person in people_by_anonymous_id.items():
        devices_per_person[person] = devices_per_person.get(person, 0) + 1
    assert max(devices_per_person.values()) >= 3
    assert any(m["type"] == "identify" and "userId" in m and "anonymousId" in m for m in data.messages)
    assert any(m["type"] == "identify" and "userId" not in m for m in data.messages)  # e-mail before sign-up
    assert data.contacts and all(row["email"] or row["phone"] for row in data.contacts)

    write_landing(data, tmp_path, files=3)
    assert len(list((tmp_path / "events" / "generated").glob("part-*.jsonl.gz"))) == 3
    assert (tmp_path / "contacts" / "crm_export.csv").exists()
    assert (tmp_path / "truth" / "identifiers.csv").read_text().startswith("identifier_type,identifier_value,person_id")
