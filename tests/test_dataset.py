"""LLMRecDataset: history fields and prompts, checked against the raw ML-100K files."""

import os

import numpy as np
import pandas as pd
import pytest
from recbole.data import create_dataset

from recbole_unlearn.config import BUNDLED_DATASETS

from conftest import SMALL_WINDOW, inside, small_config

RAW = os.path.join(BUNDLED_DATASETS, "ml-100k")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # The small window holds the known interaction below (user 234, item 1184).
    with inside(tmp_path_factory.mktemp("dataset")):
        return create_dataset(small_config(val_interval=SMALL_WINDOW))


@pytest.fixture(scope="module")
def raw_inter():
    inter = pd.read_csv(os.path.join(RAW, "ml-100k.inter"), sep="\t", dtype=str)
    inter.columns = [c.split(":")[0] for c in inter.columns]
    inter["timestamp"] = inter["timestamp"].astype(float)
    inter["rating"] = inter["rating"].astype(float)
    inter["row"] = np.arange(len(inter))
    return inter


def raw_rows(dataset, raw_inter):
    """(user token, item token, raw timestamp) of every sample (the dataset's timestamps are normalised)."""
    inter = dataset.inter_feat
    users = dataset.field2id_token["user_id"][inter["user_id"].values]
    items = dataset.field2id_token["item_id"][inter["item_id"].values]
    when = raw_inter.set_index(["user_id", "item_id"])["timestamp"]
    return users, items, when.loc[list(zip(users, items))].values


def test_history_is_strictly_earlier_and_never_the_target(dataset, raw_inter):
    when = {(u, i): t for u, i, t in zip(raw_inter.user_id, raw_inter.item_id, raw_inter.timestamp)}
    users, items, times = raw_rows(dataset, raw_inter)
    histories = dataset.inter_feat["history_item_id"].values
    item_tokens = dataset.field2id_token["item_id"]
    checked = 0
    for user, item, time, history in zip(users, items, times, histories):
        history_items = item_tokens[history]
        assert item not in history_items
        assert all(when[(user, h)] < time for h in history_items)
        checked += len(history_items)
    assert checked > 10_000  # most samples do have a history


def test_history_is_the_k_most_recent_earlier_ratings(dataset, raw_inter):
    k = dataset.config["history_length"]
    by_user = {u: g.sort_values(["timestamp", "row"]) for u, g in raw_inter.groupby("user_id")}
    users, items, times = raw_rows(dataset, raw_inter)
    inter = dataset.inter_feat
    rng = np.random.default_rng(0)
    for index in rng.choice(len(inter), size=300, replace=False):
        earlier = by_user[users[index]]
        earlier = earlier[earlier.timestamp < times[index]].tail(k)
        history = dataset.field2id_token["item_id"][inter["history_item_id"].values[index]]
        assert list(history) == list(earlier.item_id)
        assert list(inter["history_rating"].values[index]) == list(earlier.rating)


def test_prompt_of_a_known_interaction(dataset, raw_inter):
    users, items, times = raw_rows(dataset, raw_inter)
    (index,) = np.flatnonzero((users == "234") & (items == "1184"))
    expected = (
        "The user is a male. His job is retired. His age is 60. He watched the following movies in "
        "order in the past, and rated them: Godfather: Part II, The (4), Local Hero (3), Rebecca (4), "
        "Seven (Se7en) (2), Eat Drink Man Woman (4), Star Trek: The Wrath of Khan (3), "
        "Room with a View, A (3), It's a Wonderful Life (4), Aliens (3), Henry V (3). "
        "Based on the movies he has watched, deduce if he will like the movie Endless Summer 2, The. "
        "You should ONLY tell me yes or no."
    )
    rendered = dataset.prompt_template.render(
        dataset.inter_feat.iloc[[index]], dataset.history_item_field, dataset.history_rating_field
    )
    assert rendered == [expected]
    tokenizer = dataset.tokenizer
    assert dataset.prompt_text(index) == tokenizer.decode(tokenizer(expected)["input_ids"], skip_special_tokens=True)


def test_every_prompt_token_is_inside_the_vocabulary(dataset):
    vocabulary = max(dataset.tokenizer.get_vocab().values()) + 1
    assert max(ids.max() for ids in dataset.inter_feat["prompt_ids"].values) < vocabulary
    assert dataset.tokenizer.unk_token_id not in set(np.concatenate(dataset.inter_feat["prompt_ids"].values))
