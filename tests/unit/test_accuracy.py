import pandas as pd
import pytest

from orchestration.identity.accuracy import (
    all_identifiers_policy,
    anonymous_and_user_id_policy,
    ceiling_policy,
    score,
    user_id_only_policy,
)

# Two people. A shared laptop ("laptop") is used by both; Ann's e-mail is on her phone's identify.
ROWS = pd.DataFrame(
    [
        ("m1", "anonymous_id", "ann-phone"), ("m1", "user_id", "ann"), ("m1", "email", "ann@x.com"),
        ("m2", "anonymous_id", "laptop"), ("m2", "user_id", "ann"),
        ("m3", "anonymous_id", "laptop"), ("m3", "user_id", "bob"),
        ("m4", "anonymous_id", "bob-phone"), ("m4", "user_id", "bob"),
        ("m5", "email", "bob@x.com"), ("m5", "phone", "+12125550101"),  # a contact row
    ],
    columns=["message_id", "identifier_type", "identifier_value"],
)
TRUTH = pd.DataFrame(
    [
        ("anonymous_id", "ann-phone", "ann"), ("user_id", "ann", "ann"), ("email", "ann@x.com", "ann"),
        ("anonymous_id", "bob-phone", "bob"), ("user_id", "bob", "bob"), ("email", "bob@x.com", "bob"),
        ("phone", "+12125550101", "bob"),
    ],
    columns=["identifier_type", "identifier_value", "person_id"],
)


def test_pairwise_scores_count_pairs_of_identifiers():
    perfect = {(t, v): p for t, v, p in TRUTH.itertuples(index=False)}
    assert score("perfect", perfect, TRUTH).f1 == 1.0
    one_blob = {(t, v): "x" for t, v, _ in TRUTH.itertuples(index=False)}
    blob = score("blob", one_blob, TRUTH)
    # 21 predicted pairs, of which 3 (Ann) + 6 (Bob) are right.
    assert blob.precision == pytest.approx(9 / 21) and blob.recall == 1.0
    assert (blob.over_merged_profiles, blob.split_people, blob.profiles_with_two_user_ids) == (1, 0, 1)
    alone = score("alone", {}, TRUTH)
    assert (alone.precision, alone.recall, alone.split_people) == (1.0, 0.0, 2)


def test_the_policies_of_other_systems():
    no_protection = score("all", all_identifiers_policy(ROWS), TRUTH)
    assert no_protection.profiles_with_two_user_ids == 1  # the shared laptop merges Ann and Bob
    stitching = score("stitching", anonymous_and_user_id_policy(ROWS), TRUTH)
    assert stitching.profiles_with_two_user_ids == 1
    assert stitching.split_people == 1  # Bob's contact-row e-mail and phone are not linked to him
    amplitude = score("amplitude", user_id_only_policy(ROWS), TRUTH)
    assert amplitude.profiles_with_two_user_ids == 0 and amplitude.split_people == 1


def test_the_ceiling_links_only_inside_one_persons_messages():
    ceiling = score("ceiling", ceiling_policy(ROWS, TRUTH), TRUTH)
    assert ceiling.precision == 1.0
    # Ann is whole; Bob's contact row (e-mail + phone) is never linked to his user id by any message.
    assert ceiling.split_people == 1
