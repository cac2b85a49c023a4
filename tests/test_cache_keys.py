"""The cache key of an Original or Retrain covers what changes the model, and nothing that does not."""

import pytest

from recbole_unlearn.unlearn.cache import config_key

from conftest import small_config

SPLIT = "0" * 64


def key(split=SPLIT, **overrides):
    return config_key(small_config("DeepFM", **overrides), split)


@pytest.mark.parametrize(
    "overrides",
    [{"learning_rate": 0.01}, {"enable_amp": True}, {"seed": 7}, {"train_batch_size": 64}, {"epochs": 3}],
    ids=lambda overrides: next(iter(overrides)),
)
def test_a_setting_that_changes_the_model_changes_the_key(workdir, overrides):
    assert key(**overrides) != key()


@pytest.mark.parametrize(
    "overrides",
    [{"eval_batch_size": 7}, {"e2urec_alpha": 3.0}, {"unlearn_method": "neggrad"}, {"forget_ratio": 0.1}],
    ids=lambda overrides: next(iter(overrides)),
)
def test_runtime_and_method_settings_keep_the_originals_key(workdir, overrides):
    assert key(**overrides) == key()


def test_other_data_changes_the_key(workdir):
    assert key(split="1" * 64) != key()
