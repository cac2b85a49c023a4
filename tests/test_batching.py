"""Prompt-length order: every sample once per epoch, less padding, and outputs back in dataset order."""

import numpy as np
import pytest
from recbole.data import create_dataset, data_preparation

from recbole_unlearn.batching import _Reordered, bucketed_order, length_bucketed, length_sorted, prompt_lengths
from recbole_unlearn.config import config_with
from recbole_unlearn.data.loaders import train_loader
from recbole_unlearn.evaluation.outputs import collect_outputs
from recbole_unlearn.model.llmrec import LLMRec, compiled_answer_logits

from conftest import inside, small_config


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    with inside(tmp_path_factory.mktemp("batching")):
        config = small_config()
        return config, data_preparation(config, create_dataset(config))


def padding(batches, lengths):
    return sum(int(lengths[batch].max() * len(batch) - lengths[batch].sum()) for batch in batches)


def test_bucketed_order_is_a_permutation_of_batches_with_little_padding():
    generator = np.random.default_rng(0)
    lengths = generator.integers(80, 190, size=1000)
    order = bucketed_order(lengths, 32, 5, np.random.default_rng(1))
    assert sorted(order) == list(range(1000))
    bucketed = [order[i : i + 32] for i in range(0, 1000, 32)]
    shuffled = [batch for batch in np.array_split(generator.permutation(1000), len(bucketed))]
    assert padding(bucketed, lengths) < padding(shuffled, lengths) / 3
    assert not np.array_equal(order, bucketed_order(lengths, 32, 5, np.random.default_rng(2)))


def pairs(batches):
    return [pair for batch in batches for pair in zip(batch["user_id"].tolist(), batch["item_id"].tolist())]


def test_training_loader_gives_every_sample_once_per_epoch_in_new_batches(splits):
    _, (train, _, _) = splits
    loader = length_bucketed(train)
    first, second = list(loader), list(loader)
    dataset = train._dataset.inter_feat
    everything = sorted(zip(dataset["user_id"].tolist(), dataset["item_id"].tolist()))
    assert sorted(pairs(first)) == sorted(pairs(second)) == everything
    assert pairs(first) != pairs(second)
    lengths = prompt_lengths(train._dataset)
    spread = np.mean([np.ptp(batch["prompt_length"].numpy()) for batch in first])
    assert spread < np.mean(
        [np.ptp(lengths[np.random.default_rng(0).permutation(len(lengths))[:32]]) for _ in range(20)]
    )


def test_no_buckets_keeps_recboles_order(splits):
    _, (train, _, _) = splits
    loader = train_loader(small_config(llm_length_bucket_batches=0), train._dataset)
    assert not isinstance(loader, _Reordered) and isinstance(train_loader(train.config, train._dataset), _Reordered)


def test_sorted_evaluation_returns_outputs_in_dataset_order(splits):
    config, (train, _, test) = splits
    model = LLMRec(config, train._dataset)
    ordered = length_sorted(test)
    assert list(np.diff(prompt_lengths(test._dataset)[ordered.order]) >= 0) == [True] * (len(ordered.order) - 1)
    in_order = collect_outputs(model, test, config["LABEL_FIELD"])
    by_length = collect_outputs(model, ordered, config["LABEL_FIELD"])
    assert np.array_equal(by_length.labels, test._dataset.inter_feat["label"].numpy())
    assert np.allclose(by_length.yes_no, in_order.yes_no, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("eval_dtype", ["float32", "bfloat16"])
def test_compiled_inference_gives_the_eager_outputs(splits, eval_dtype):
    config, (train, _, test) = splits
    model = LLMRec(config_with(config, llm_eval_dtype=eval_dtype), train._dataset)
    eager = collect_outputs(model, length_sorted(test), config["LABEL_FIELD"])
    model.compile_inference = True
    compiled = collect_outputs(model, length_sorted(test), config["LABEL_FIELD"])
    # bfloat16 rounds at other points when the compiler fuses operations.
    assert np.allclose(compiled.yes_no, eager.yes_no, atol=1e-5 if eval_dtype == "float32" else 1e-2)
    assert compiled_answer_logits.cache_info().currsize == 1
