"""RecBole's built-in context-aware models through every unlearning method, and the comparison table."""

import csv
import json
import os

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model

from recbole_unlearn import Config
from recbole_unlearn.checkpoint import load_checkpoint
from recbole_unlearn.evaluation.report import write_comparison
from recbole_unlearn.model.answer import answer_logits
from recbole_unlearn.model.lora import add_lora, traced_layers
from recbole_unlearn.quick_start import run_recbole_unlearn, unlearn_one
from recbole_unlearn.trainer import SafeTrainer

from conftest import inside, quiet, result_rows, small_config

MODELS = ["DeepFM", "WideDeep"]


def ctr_config(output_dir, **overrides):
    """RecBole's CTR recipe (early stopping) on the tests' ML-100K slice (``val_interval=None``: the
    shipped window)."""
    config = quiet(unlearn_output_dir=str(output_dir), **overrides)
    return {key: value for key, value in config.items() if value is not None}


def compare(output_dir, models, **overrides):
    with inside(output_dir):
        results = run_recbole_unlearn(
            ",".join(models), "ml-100k", config_dict=ctr_config(output_dir / "out", **overrides)
        )
    return output_dir / "out", results


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    return compare(tmp_path_factory.mktemp("builtin"), MODELS)


def built(model, **overrides):
    config = small_config(model, **overrides)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    return config, get_model(model)(config, train_data._dataset), next(iter(train_data))


def test_every_method_runs_for_built_in_models(comparison):
    _, results = comparison
    assert [result["context"]["model"] for result in results] == MODELS
    for result in results:
        rows = {row["method"]: row for row in result["rows"]}
        assert list(rows) == result_rows()
        for row in rows.values():
            # A CTR model's whole answer distribution is the two-way one.
            assert row["forget_jsd"] == pytest.approx(row["forget_jsd_yesno"])
            assert np.isfinite([row["test_auc"], row["forget_l2"], row["forget_sym_kl"]]).all()
        assert 0 < rows["e2urec"]["trainable_share"] < 1
        assert rows["neggrad"]["trainable_share"] == 1


def test_comparison_table_and_plot(comparison):
    output_dir, results = comparison
    (directory,) = [path for path in output_dir.iterdir() if path.name.startswith("comparison-ml-100k-")]
    for name in ("comparison.csv", "comparison.json", "comparison.md", "comparison.png"):
        assert os.path.getsize(directory / name) > 0
    with open(directory / "comparison.csv") as f:
        table = list(csv.DictReader(f))
    methods = result_rows()
    assert [(row["model"], row["method"]) for row in table] == [(m, method) for m in MODELS for method in methods]
    deepfm_e2urec = next(row for row in results[0]["rows"] if row["method"] == "e2urec")
    assert float(table[methods.index("e2urec")]["forget_jsd_yesno"]) == pytest.approx(deepfm_e2urec["forget_jsd_yesno"])
    assert len({result["context"]["forget_sha256"] for result in results}) == 1


def test_comparison_of_runs_on_different_forget_sets_has_a_table_per_forget_set(comparison, tmp_path):
    _, results = comparison
    other = {**results[1], "context": {**results[1]["context"], "forget_sha256": "0" * 64}}
    table = write_comparison([results[0], other], tmp_path)
    first, second = table.split("\n\n", 1)[0], table.split("\n\n")[2]
    assert first.startswith(f"{MODELS[0]} (split ") and second.startswith(f"{MODELS[1]} (split ")
    assert "forget set 000000000000;" in second
    assert (tmp_path / "comparison.md").read_text().startswith(table)
    with open(tmp_path / "comparison.json") as f:
        data = json.load(f)["context"]["data"]
    assert [(group["models"], group["forget_sha256"]) for group in data] == [
        ([MODELS[0]], results[0]["context"]["forget_sha256"]),
        ([MODELS[1]], "0" * 64),
    ]


# Row keys measured from the machine, not computed from the models.
MEASURED_COST = ("unlearn_seconds", "seconds_to_best", "peak_rss_mib", "peak_gpu_mib")


def test_a_method_gives_the_same_result_whatever_ran_before_it(comparison):
    """DeepFM trains with dropout, so training the Original and Retrain (the first run, an empty cache)
    moves torch's random state where loading them (this run) does not; SISA, NegGrad and the label flip ran before
    E2URec there, none here. Its LoRA initialisation and dropout draw the same numbers either way."""
    output_dir, results = comparison
    (alone,) = compare(output_dir, ["DeepFM"], unlearn_method="e2urec,npo")[1]
    before, again = ({row["method"]: row for row in result["rows"]} for result in (results[0], alone))
    for method in ("e2urec", "npo"):
        measured = {key: value for key, value in again[method].items() if key not in MEASURED_COST}
        # assert_equal counts NaN (a fairness group below its minimum size) equal to NaN.
        np.testing.assert_equal(measured, {key: before[method][key] for key in measured}, err_msg=method)


def test_e2urec_adapter_checkpoint_reloads_to_the_same_test_auc(comparison):
    output_dir, results = comparison
    config = Config(model="DeepFM", dataset="ml-100k", config_dict=ctr_config(output_dir))
    _, _, test_data = data_preparation(config, create_dataset(config))
    model = get_model("DeepFM")(config, test_data._dataset)
    (original,) = (output_dir / "cache").glob("DeepFM-original-*.safetensors")
    load_checkpoint(model, str(original))
    add_lora(model, traced_layers(model, next(iter(test_data))[0]), rank=4, alpha=8, dropout=0.05)
    metadata = load_checkpoint(model, os.path.join(results[0]["run_dir"], "e2urec.safetensors"))
    assert metadata["tensors"] == "trainable"
    test_auc = SafeTrainer(config, model).evaluate(test_data, load_best_model=False)["auc"]
    row = next(row for row in results[0]["rows"] if row["method"] == "e2urec")
    assert test_auc == pytest.approx(row["test_auc"])


@pytest.mark.parametrize("model", ["LR", "DeepFM", "AutoInt"])
def test_lora_targets_are_the_layers_a_prediction_uses(workdir, model):
    config, recommender, batch = built(model)
    recommender.eval()
    targets = traced_layers(recommender, batch)
    assert targets
    with torch.no_grad():
        before = answer_logits(recommender, batch)
    # LR reads only its first-order tables; MultiheadAttention reads out_proj's weight directly.
    if model == "LR":
        assert all(name.startswith("first_order_linear.") for name in targets)
    assert not any("self_attns" in name for name in targets)
    adapted = add_lora(recommender, targets, rank=4, alpha=8, dropout=0.0)
    ranks = {name: module.r["default"] for name, module in adapted.named_modules() if hasattr(module, "r")}
    assert set(ranks) == set(targets)
    for name, rank in ranks.items():
        assert rank == min(4, *dict(adapted.named_modules())[name].base_layer.weight.shape)
    # LoRA starts as the identity: predictions are unchanged until it is trained.
    with torch.no_grad():
        assert torch.allclose(answer_logits(adapted, batch), before)


def test_two_way_distribution_reproduces_recbole_predictions(workdir):
    for model in ("LR", "DeepFM", "DCNV2"):
        _, recommender, batch = built(model)
        recommender.eval()
        with torch.no_grad():
            like = torch.softmax(answer_logits(recommender, batch), dim=-1)[:, 0]
            assert torch.allclose(like, recommender.predict(batch), atol=1e-5), model


def test_bad_lora_targets_fail_before_training(workdir):
    with pytest.raises(ValueError, match=r"e2urec_lora_targets \['no_such_layer'\] name no layer of DeepFM"):
        unlearn_one(
            "DeepFM",
            "ml-100k",
            config_dict=ctr_config(workdir / "out", unlearn_method="e2urec", e2urec_lora_targets=["no_such_layer"]),
        )
    assert not (workdir / "out" / "cache").exists()


@pytest.mark.parametrize(
    "model, method, message",
    [
        (
            "ItemKNN",
            "neggrad",
            r"Model ItemKNN cannot be unlearned by method\(s\) neggrad: it is not trained by gradient descent",
        ),
        (
            "CKE",
            "retrain,e2urec",
            r"Model CKE cannot be unlearned by method\(s\) retrain, e2urec: RecBole ModelType.KNOWLEDGE models",
        ),
    ],
)
def test_models_a_method_cannot_unlearn_fail_at_startup(workdir, model, method, message):
    with pytest.raises(ValueError, match=message):
        run_recbole_unlearn(model, "ml-100k", config_dict={"unlearn_method": method, "use_gpu": False})
