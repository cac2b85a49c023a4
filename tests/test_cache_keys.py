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


def launched_key(world_size, nproc):
    """The key a rank of ``run_recbole_unlearn(..., nproc=nproc, world_size=world_size)`` computes (RecBole's
    Config of a launched rank: ``single_spec`` False and the launch keys set)."""
    config = small_config("DeepFM")
    config.final_config_dict.update(single_spec=False, world_size=world_size, nproc=nproc, offset=0)
    return config_key(config, SPLIT)


def test_the_launch_that_changes_the_batches_changes_the_key(workdir):
    assert len({key(), launched_key(world_size=1, nproc=1), launched_key(world_size=2, nproc=2)}) == 3


def test_spreading_the_same_ranks_over_machines_keeps_the_key(workdir):
    assert launched_key(world_size=4, nproc=2) == launched_key(world_size=4, nproc=4)


def test_other_data_changes_the_key(workdir):
    assert key(split="1" * 64) != key()
