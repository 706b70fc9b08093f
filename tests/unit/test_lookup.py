"""The lookup command's renderers, on a hand-made report (no warehouse needed)."""

from datetime import datetime

from orchestration.lookup import ProfileReport, parse_lookup_output, render_dot, render_text

AT = datetime(2024, 3, 12, 15, 6)


def report() -> ProfileReport:
    link = dict(from_type="user_id", from_value="u1", to_type="email", to_value="dana@example.com", link_status="linked",
                refusal_reason=None, first_at=AT, messages=2, message_id="m1", file_path="events/a.jsonl",
                line_number=3, other_profile_id="p1")
    refused = {**link, "to_type": "user_id", "to_value": "u2", "link_status": "refused",
               "refusal_reason": "user_id limit 1", "other_profile_id": "p2", "messages": 1}
    return ProfileReport("p1", [{"identifier_type": "email", "identifier_value": "dana@example.com", "profile_id": "p1"}], {
        "profile": [dict(user_id="u1", email="dana@example.com", phone=None, is_anonymous=False, event_count=2,
                         first_seen_at=AT, last_seen_at=AT)],
        "identifiers": [dict(identifier_type="user_id", identifier_value="u1", first_seen_at=AT, last_seen_at=AT, message_count=2),
                        dict(identifier_type="email", identifier_value="dana@example.com", first_seen_at=AT,
                             last_seen_at=AT, message_count=1)],
        "traits": [dict(trait_key="name", trait_value='"Dana"', trait_source="list:webinar", message_id="c1",
                        file_path="contacts/webinar.csv", line_number=2, event_at=AT, values_seen=1)],
        "computed_traits": [dict(orders_count=3, total_revenue=None)],
        "audiences": [dict(audience="buyers")],
        "audience_history": [dict(audience="buyers", change="entered", changed_at=AT)],
        "events": [dict(event_at=AT, source="segment", message_type="track", event_name="Signed Up", message_id="m1")],
        "links": [link, refused],
        "junk": [],
        "merges": [],
    })


def test_text_shows_every_section_with_sources_and_evidence():
    text = render_text(report())
    assert "found by email:dana@example.com" in text
    assert 'name       "Dana"' in text and "list:webinar c1 (contacts/webinar.csv:2" in text
    assert "orders_count  3" in text and "total_revenue" not in text  # null computed traits are left out
    assert "audiences: buyers" in text and "entered" in text
    assert "user_id:u1 == email:dana@example.com   m1 (events/a.jsonl:3, 2024-03-12 15:06:00, and 1 more)" in text
    assert "REFUSED (user_id limit 1; other profile p2)" in text


def test_graph_has_a_node_per_identifier_and_labelled_links():
    dot = render_dot(report())
    assert dot.startswith("graph identity {") and dot.rstrip().endswith("}")
    assert '"user_id:u1" -- "email:dana@example.com" [label="m1\\na.jsonl:3 (+1)"];' in dot
    assert 'style=dashed, color=red' in dot and '"user_id:u2" [label="user_id\\nu2\\n(other profile)"' in dot


def test_the_macro_answer_is_read_from_its_last_json_line():
    out = 'some log line\n{"value": "x", "matches": [{"identifier_type": "email", "identifier_value": "x", "profile_id": "p"}]}\n'
    assert parse_lookup_output(out) == [{"identifier_type": "email", "identifier_value": "x", "profile_id": "p"}]
