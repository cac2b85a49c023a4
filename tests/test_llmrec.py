"""A tiny LLMRec trained on a real ML-100K slice through RecBole's own data and training code."""

import json
import os

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

from recbole_unlearn.evaluation.outputs import collect_outputs
from recbole_unlearn.model.llmrec import LLMRec
from recbole_unlearn.trainer import safe_trainer_for
from recbole_unlearn.unlearn.unlearn_trainer import FrozenOutputs

from conftest import SMALL_WINDOW, TINY_T5, inside, small_config


def build(config):
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train._dataset)
    trainer = safe_trainer_for(config)(config, model)
    return model, trainer, (train, valid, test)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with inside(tmp_path_factory.mktemp("llmrec")):
        # The small window: enough data for the beats-chance check below to be a safe margin.
        config = small_config(epochs=3, learning_rate=0.001, val_interval=SMALL_WINDOW)
        model, trainer, (train, valid, test) = build(config)
        trainer.fit(train, valid, saved=True)
        test_result = trainer.evaluate(test, load_best_model=True)
        yield config, model, trainer, test, test_result


def predictions(model, data):
    model.eval()
    with torch.no_grad():
        return torch.cat([model.predict(batch[0]) for batch in data])


def test_tiny_llmrec_beats_chance_on_test(trained):
    *_, test_result = trained
    assert test_result["auc"] > 0.6
    assert 0 < test_result["logloss"] < 0.75


def test_answer_ids_come_from_the_tokenizer(trained):
    _, model, *_ = trained
    vocabulary = model.tokenizer.get_vocab()
    assert model.answer_ids == [vocabulary["yes"], vocabulary["no"]]
    assert max(model.answer_ids) < model.backbone.model.get_input_embeddings().num_embeddings


def test_best_checkpoint_round_trip(trained, workdir):
    config, model, trainer, test, test_result = trained
    checkpoint = trainer.saved_model_file
    assert checkpoint.endswith(".safetensors") and os.path.isfile(checkpoint)
    with open(os.path.splitext(checkpoint)[0] + ".json") as f:
        assert json.load(f)["model"] == "LLMRec"

    fresh = LLMRec(config, test._dataset)
    assert not torch.equal(predictions(fresh, test), predictions(model, test))
    fresh_trainer = get_trainer(config["MODEL_TYPE"], "LLMRec")(config, fresh)
    assert fresh_trainer.evaluate(test, load_best_model=True, model_file=checkpoint) == test_result
    assert torch.allclose(predictions(fresh, test), predictions(model, test))


def test_llm_path_loads_a_saved_t5_and_its_tokenizer(trained, workdir):
    _, model, _, test, _ = trained
    model.save_pretrained(workdir / "llm")
    assert (workdir / "llm" / "config.json").is_file() and (workdir / "llm" / "tokenizer.json").is_file()

    reloaded, _, (_, _, reloaded_test) = build(small_config(llm_path=str(workdir / "llm"), val_interval=SMALL_WINDOW))
    assert type(reloaded.tokenizer).__name__ == type(model.tokenizer).__name__
    assert torch.allclose(predictions(reloaded, reloaded_test), predictions(model, test), atol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"enable_amp": True}, torch.bfloat16),
        ({"enable_amp": True, "amp_dtype": "float16"}, torch.float16),
        ({"enable_amp": False}, None),
    ],
)
def test_training_runs_in_the_configured_mixed_precision(overrides, expected, workdir):
    model, trainer, (train, _, _) = build(small_config(**overrides))
    seen = []

    def loss(interaction):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return model.calculate_loss(interaction)

    trainer._train_epoch([batch for _, batch in zip(range(2), train)], 0, loss_func=loss)
    assert seen == [expected, expected]
    # The dtype is set for the loop only: torch's default (bfloat16 on a CPU) holds again after it.
    assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_default_t5_runs_eager_attention_unless_llm_config_names_another(trained, workdir):
    _, model, *_ = trained
    assert model.backbone.model.config._attn_implementation == "eager"
    config = small_config(llm_config={**TINY_T5, "attn_implementation": "sdpa"})
    dataset = create_dataset(config)
    assert LLMRec(config, dataset).backbone.model.config._attn_implementation == "sdpa"


def test_llm_eval_dtype_sets_the_precision_of_evaluation_only(trained, workdir):
    config, model, _, test, _ = trained
    fast = LLMRec(small_config(llm_eval_dtype="bfloat16", val_interval=SMALL_WINDOW), test._dataset)
    fast.load_state_dict(model.state_dict())
    seen = []
    fast.backbone.model.lm_head.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    like = predictions(fast, test)  # RecBole's validation and test call predict
    ours = collect_outputs(fast, test, config["LABEL_FIELD"], retrained=model)
    assert set(seen) == {torch.bfloat16} and like.dtype == torch.float32
    assert np.allclose(ours.scores, like.numpy(), atol=1e-6)
    assert np.abs(like - predictions(model, test)).max() < 0.05
    # A frozen teacher and a training step keep their own precision.
    seen.clear()
    batch = next(iter(test))[0]
    FrozenOutputs(config, 0)("teacher", batch, fast.answer_logits)
    fast.calculate_loss(batch)
    assert seen == [torch.float32, torch.float32]
    with pytest.raises(ValueError, match="llm_eval_dtype 'float16' is not one of"):
        LLMRec(small_config(llm_eval_dtype="float16"), test._dataset)


@pytest.mark.parametrize(("valid_scores", "best_is_last"), [([0.9, 0.8, 0.7], False), ([0.7, 0.8, 0.9], True)])
def test_seconds_to_best_stop_at_the_kept_epoch(valid_scores, best_is_last, workdir):
    """The official code's count: training loops up to the best validation epoch, not the epochs after it."""
    config = small_config("DeepFM", epochs=3, stopping_step=5)
    model, trainer, (train, valid, _) = build(config)
    scores = iter(valid_scores)
    trainer._valid_epoch = lambda *args, **kwargs: (next(scores), {"auc": 0.0})
    trainer.fit(train, valid, saved=True)
    assert 0 < trainer.training_seconds_to_best <= trainer.training_seconds
    assert (trainer.training_seconds_to_best == trainer.training_seconds) == best_is_last
