"""Forget requests on a real ML-100K training split: invariants (hypothesis); bad requests are in test_bad_inputs.py."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_unlearn.data.forget import ForgetRequest
from recbole_unlearn.data.partition import random_partition


def raw(train, field):
    return train.field2id_token[field][train.inter_feat[field].numpy()]


def split(request, train):
    """(forget, retain) datasets as the protocol cuts them: the request's masks over the training split."""
    forget, removed = request.masks_after(train)
    inter = train.inter_feat
    return train.copy(inter[np.flatnonzero(forget)]), train.copy(inter[np.flatnonzero(~removed)])


def keys(dataset):
    return set(zip(dataset.inter_feat["user_id"].tolist(), dataset.inter_feat["item_id"].tolist()))


@settings(max_examples=25, deadline=None)
@given(level=st.sampled_from(["user", "item", "interaction"]), ratio=st.floats(0.05, 0.6), seed=st.integers(0, 10**6))
def test_split_invariants(train, level, ratio, seed):
    request = ForgetRequest(level=level, ratio=ratio, seed=seed)
    forget, retain = split(request, train)
    assert len(forget) > 0 and len(retain) > 0
    assert keys(forget).isdisjoint(keys(retain))
    assert keys(forget) | keys(retain) == keys(train)
    assert len(forget) + len(retain) == len(train)
    if level in ("user", "item"):
        field = "user_id" if level == "user" else "item_id"
        assert set(forget.inter_feat[field].tolist()).isdisjoint(retain.inter_feat[field].tolist())
    again, _ = split(ForgetRequest(level=level, ratio=ratio, seed=seed), train)
    assert keys(again) == keys(forget)


def test_user_level_ratio_forgets_that_share_of_users(train):
    forget, _ = split(ForgetRequest(level="user", ratio=0.2, seed=42), train)
    users = np.unique(train.inter_feat["user_id"].numpy())
    assert len(np.unique(forget.inter_feat["user_id"].numpy())) == round(0.2 * len(users))


@pytest.mark.parametrize("level, count", [("user", 1), ("user", 7), ("item", 3), ("interaction", 1)])
def test_a_whole_number_forget_ratio_forgets_that_many_units(train, level, count):
    forget, retain = split(ForgetRequest(level=level, ratio=count, seed=42), train)
    fields = {"user": ["user_id"], "item": ["item_id"], "interaction": ["user_id", "item_id"]}[level]
    assert len(set(zip(*(forget.inter_feat[field].tolist() for field in fields)))) == count
    assert len(forget) + len(retain) == len(train)


def test_interaction_level_ids(train):
    pair = f"{raw(train, 'user_id')[0]}:{raw(train, 'item_id')[0]}"
    forget, retain = split(ForgetRequest(level="interaction", ids=(pair,)), train)
    assert len(forget) == 1 and len(retain) == len(train) - 1


def test_sisa_shards_keep_each_user_in_one_shard(train):
    shards = random_partition(train, 4, seed=42)
    users = train.inter_feat["user_id"].numpy()
    for user in np.unique(users):
        assert len(np.unique(shards[users == user])) == 1
    assert set(shards) == {0, 1, 2, 3}
    assert np.array_equal(shards, random_partition(train, 4, seed=42))
