"""Attacks on unlearned models, opt-in: relearning from a share of the forget set, and U-LiRA's per-example
membership inference with shadow models."""

import glob
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recbole_unlearn import Config
from recbole_unlearn.evaluation import labeled_metrics as metrics
from recbole_unlearn.evaluation.outputs import SplitOutputs
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.relearn import relearn_rows, relearned
from recbole_unlearn.unlearn.shadows import Shadows

from conftest import deepfm_cli_run, quiet


def test_the_relearning_attack_trains_a_copy(workdir):
    config = Config("DeepFM", "ml-100k", config_dict=quiet(epochs=1, unlearn_relearn=True))
    protocol = UnlearnProtocol(config)
    model = protocol.new_model()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    rows = relearn_rows(protocol.forget_rows, 0.1, config["seed"])
    assert set(rows) <= set(protocol.forget_rows) and len(rows) == round(0.1 * len(protocol.forget_rows))
    attacked = relearned(config, model, protocol.subset_loader(rows))
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert any(not torch.equal(before[name], tensor) for name, tensor in attacked.state_dict().items())


def split(labels, like):
    like = np.asarray(like, dtype=float)
    return SplitOutputs(labels=np.asarray(labels, dtype=float), scores=like, yes_no=np.stack([like, 1 - like], 1))


def ulira_of(forget_confidence, holdout_confidence, seed=0):
    """U-LiRA on synthetic candidates: 8 shadows whose confidence (a logit) is about 2 on the candidates they
    trained on and 0 on the others; the target's confidences as given (every label 1)."""
    generator = np.random.default_rng(seed)
    candidates = len(forget_confidence) + len(holdout_confidence)
    trained_on = generator.random((8, candidates)) < 0.5
    confidence = np.where(trained_on, 2.0, 0.0) + generator.normal(0, 0.5, (8, candidates))
    outputs = {
        part: split(np.ones(len(logits)), 1 / (1 + np.exp(-np.asarray(logits))))
        for part, logits in (("forget", forget_confidence), ("holdout", holdout_confidence))
    }
    evaluation = SimpleNamespace(outputs=outputs, shadows=Shadows(trained_on, confidence), memo={})
    return metrics.ulira(evaluation)


def test_ulira_tells_members_from_non_members_and_not_two_kinds_of_non_members():
    generator = np.random.default_rng(1)
    members, non_members = generator.normal(2, 0.5, 300), generator.normal(0, 0.5, 300)
    remembered = ulira_of(members, non_members)
    assert remembered["auc"] > 0.95 and remembered[0.01] > 0.5
    never_seen = ulira_of(generator.normal(0, 0.5, 300), non_members)
    assert abs(never_seen["auc"] - 0.5) < 0.07
    assert metrics.confidence(split([1, 0], [0.5, 0.5])) == pytest.approx([0.0, 0.0])


def test_both_attacks_run_through_the_cli_on_every_model(tmp_path):
    options = ("--unlearn_relearn=True", "--unlearn_relearn_steps=3", "--unlearn_mia=ulira", "--unlearn_mia_shadows=2")
    _, rows = deepfm_cli_run(tmp_path, *options)
    for method in ("original", "retrain", "neggrad", "sisa"):
        for key in (
            "forget_relearn_l2",
            "forget_ulira_auc",
            "forget_ulira_tpr_at_1pct_fpr",
            "forget_ulira_tpr_at_01pct_fpr",
        ):
            assert math.isfinite(rows[method][key]), (method, key)
    assert math.isfinite(rows["neggrad"]["forget_relearn_recovered"]) and math.isnan(
        rows["original"]["forget_relearn_recovered"]
    )
    # The shadows are cached beside the Original and Retrain.
    assert len(glob.glob(str(tmp_path / "saved" / "unlearn" / "cache" / "DeepFM-shadow*.safetensors"))) == 2
