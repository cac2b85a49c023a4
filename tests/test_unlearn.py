"""Every unlearning method end to end on a real ML-100K slice, and the pieces they are made of."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from recbole_unlearn.evaluation.cost import CostMeter
from recbole_unlearn.evaluation.distances import (
    js_divergence,
    l2_distance,
    symmetric_kl,
)
from recbole_unlearn.evaluation.metrics import METRICS, needed_splits
from recbole_unlearn.model.answer import answer_logits
from recbole_unlearn.provenance import describe_machine, file_sha256, machine
from recbole_unlearn.quick_start import unlearn_one
from recbole_unlearn.unlearn import cache as cache_module
from recbole_unlearn.unlearn import evaluation_steps as evaluation_module
from recbole_unlearn.unlearn.methods.e2urec import E2URec, forgetting_teacher_logits
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.receipt import verify
from recbole_unlearn.unlearn.unlearn_trainer import FrozenOutputs

from conftest import (
    inside,
    result_rows,
    rows_by_method,
    small_config,
    tiny_unlearn_config,
)


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("unlearn")


@pytest.fixture(scope="module")
def first_run(output_dir):
    with inside(output_dir):
        yield unlearn_one("LLMRec", "ml-100k", config_dict=tiny_unlearn_config(output_dir / "out"))


# The fairness values and the groups each reads.
FAIRNESS_GROUPS = {
    "test_auc_active": ("active",),
    "test_auc_inactive": ("inactive",),
    "fairness_gap": ("active", "inactive"),
}


def test_every_method_runs_and_reports_every_registered_metric(first_run):
    rows = rows_by_method(first_run)
    assert list(rows) == result_rows(language_model=True)
    for row in rows.values():
        for name, metric in METRICS.items():
            if metric.family == "ranking" or metric.opt_in:  # opt-in metrics are off by default
                assert name not in row, name
            elif any(row[f"fairness_{group}_users"] < 20 for group in FAIRNESS_GROUPS.get(name, ())):
                # Below unlearn_fairness_min_users (20) a fairness value is NaN by definition.
                assert np.isnan(row[name]), (row["method"], name)
            else:
                assert np.isfinite(row[name]), (row["method"], name)
    # Built by training (validation, data, checkpoints not counted) or not trained (the whole time).
    assert 0 < rows["retrain"]["seconds_to_best"] < rows["retrain"]["unlearn_seconds"]
    assert rows["e2urec"]["seconds_to_best"] == rows["e2urec"]["unlearn_seconds"]
    # Models trained from scratch: one each for the Original and Retrain, the retrained shards for SISA
    # (those built before the request are not its cost), none for a fine-tune.
    assert [rows[name]["models_trained"] for name in ("original", "retrain", "e2urec", "neggrad")] == [1, 1, 0, 0]
    assert 1 <= rows["sisa"]["models_trained"] <= 4
    for name in ("results.csv", "results.json", "results.md", "tradeoff.png"):
        assert os.path.getsize(os.path.join(first_run["run_dir"], name)) > 0
    with open(os.path.join(first_run["run_dir"], "results.json")) as f:
        document = json.load(f)
    assert [row["method"] for row in document["results"]] == result_rows(language_model=True)
    # Seconds mean little without the machine: the JSON records it and the table says it.
    assert document["context"]["machine"] == machine()
    with open(os.path.join(first_run["run_dir"], "results.md")) as f:
        assert f"Seconds measured on {describe_machine(machine())}." in f.read()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")
def test_every_method_runs_and_verifies_on_a_gpu(tmp_path, monkeypatch):
    """Loaders yield CPU batches: training, evaluation, teachers and the influence update each meet the model on
    its device, and a receipt re-evaluates there."""
    monkeypatch.chdir(tmp_path)
    run = unlearn_one("LLMRec", "ml-100k", config_dict=tiny_unlearn_config(tmp_path / "out", use_gpu=True))
    rows = rows_by_method(run)
    assert list(rows) == result_rows(language_model=True)
    assert all(row["peak_gpu_mib"] > 0 for row in rows.values())
    with open(os.path.join(run["run_dir"], "results.json")) as f:
        assert json.load(f)["context"]["machine"]["gpu"] == torch.cuda.get_device_name()
    for method in ("e2urec", "sisa", "influence"):
        checks = verify(os.path.join(run["run_dir"], f"receipt-{method}.json"))
        assert all(ok for _, ok, _ in checks), (method, checks)


def test_only_e2urec_trains_a_parameter_subset(first_run):
    rows = rows_by_method(first_run)
    assert 0 < rows["e2urec"]["trainable_share"] < 0.1
    assert rows["neggrad"]["trainable_share"] == rows["original"]["trainable_share"] == 1


def test_original_and_retrain_are_cached_with_their_outputs_and_the_original_never_changes(
    first_run, output_dir, monkeypatch
):
    cache = output_dir / "out" / "cache"
    (original,) = cache.glob("LLMRec-original-*.safetensors")
    assert len(list(cache.glob("outputs/LLMRec-original-*.safetensors"))) == 1
    assert len(list(cache.glob("outputs/LLMRec-retrain-*.safetensors"))) == 1
    before = file_sha256(original)
    evaluated = []
    collect = evaluation_module.collect_outputs

    def counted(model, *args, **kwargs):
        evaluated.append(kwargs)
        return collect(model, *args, **kwargs)

    monkeypatch.setattr(evaluation_module, "collect_outputs", counted)
    second = unlearn_one(
        "LLMRec", "ml-100k", config_dict=tiny_unlearn_config(output_dir / "out", unlearn_method="neggrad,e2urec")
    )
    assert file_sha256(original) == before
    assert [row["method"] for row in second["rows"]] == ["original", "retrain", "neggrad", "e2urec"]
    # Neither cached model is evaluated again: only the two new models, each on test, forget and holdout, and
    # on the forget set against the Retrain answers kept in the cache, not by running the Retrain model again.
    assert len(evaluated) == 2 * len(needed_splits()) == 6
    forget_passes = [kwargs for kwargs in evaluated if "retrained_answers" in kwargs]
    assert len(forget_passes) == 2
    assert all(kwargs["retrained_answers"] is not None and kwargs["retrained"] is None for kwargs in forget_passes)
    first, again = rows_by_method(first_run), rows_by_method(second)
    for method in ("original", "retrain"):
        np.testing.assert_equal(again[method], first[method])  # NaN (a small fairness group) equals NaN


def test_a_cached_model_or_output_is_not_reused_by_changed_code(first_run, output_dir, monkeypatch, tmp_path):
    # A copy of the shared cache: the models this test adds stay out of the other tests' cache.
    out = shutil.copytree(output_dir / "out", tmp_path / "out")
    cache = out / "cache"
    before = {path.name for path in cache.glob("**/*.safetensors")}
    for module in (evaluation_module, cache_module):
        monkeypatch.setattr(module, "code_sha256", lambda: "another version of recbole-unlearn")
    monkeypatch.chdir(tmp_path)
    unlearn_one("LLMRec", "ml-100k", config_dict=tiny_unlearn_config(out, unlearn_method="neggrad"))
    added = {path.name for path in cache.glob("**/*.safetensors")} - before
    # Trained and evaluated again, under new keys: the Original, Retrain, and each one's outputs.
    assert sorted(name.split("-")[1] for name in added) == ["original", "original", "retrain", "retrain"]


@pytest.mark.parametrize(
    "model, answer_positions", [("LLMRec", "first"), ("LLMRec", "all"), ("DeepFM", "first"), ("LR", "first")]
)
def test_e2urec_trains_the_lora_b_halves_and_leaves_every_base_weight_bit_identical(
    first_run, output_dir, model, answer_positions
):
    config = tiny_unlearn_config(output_dir / "out", e2urec_answer_positions=answer_positions)
    protocol = UnlearnProtocol(small_config(model, **config))
    original, _ = protocol.original()
    before = {name: p.detach().clone() for name, p in original.named_parameters()}
    unlearned = E2URec.run(protocol, original)
    # peft starts one half of each adapter at zero (a Linear's B, an Embedding's A), so an adapter is the
    # identity until trained; those halves are non-zero only if training moved them.
    zero_initialised = [
        name for name in dict(unlearned.named_parameters()) if "lora_B." in name or "lora_embedding_A." in name
    ]
    assert zero_initialised
    for name, parameter in unlearned.named_parameters():
        if "lora_" in name:
            assert parameter.requires_grad, name
        else:
            assert not parameter.requires_grad, name
            assert torch.equal(parameter, before[name.replace(".base_layer", "")]), name
    # At the first answer position alone the decoder has one token: its self-attention softmax has a single
    # key, so the query gets exactly zero gradient and its adapter stays the identity.
    single_key_query = {"backbone.model.decoder.block.0.layer.0.SelfAttention.q.lora_B.default.weight"}
    trained = dict(unlearned.named_parameters())
    unmoved = {name for name in zero_initialised if trained[name].abs().sum() == 0}
    assert unmoved == (single_key_query if (model, answer_positions) == ("LLMRec", "first") else set())
    for name, parameter in original.named_parameters():
        assert torch.equal(parameter, before[name])


def test_forgetting_teacher_matches_a_hand_computation():
    original = torch.tensor([[1.0, 2.0, 3.0]])
    augmented = torch.tensor([[2.0, 1.0, 3.5]])
    # relu(z_a - z_o) = [1, 0, 0.5]; z_o - 2 * that = [-1, 2, 2]
    assert torch.equal(forgetting_teacher_logits(original, augmented, 2.0), torch.tensor([[-1.0, 2.0, 2.0]]))


class FakeGPUMemory:
    """torch.cuda's allocation counters, driven by hand: what is allocated now and the peak since a reset."""

    def __init__(self, monkeypatch):
        self.allocated = self.peak = 0
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: self.peak)
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", self.reset)

    def reset(self):
        self.peak = self.allocated

    def use(self, mib):
        self.allocated += mib * 2**20
        self.peak = max(self.peak, self.allocated)


def test_nested_cost_meters_each_report_the_gpu_peak_of_their_own_block(monkeypatch):
    gpu = FakeGPUMemory(monkeypatch)
    with CostMeter() as outer:
        gpu.use(100)
        gpu.use(-100)
        with CostMeter() as inner:  # resets torch's one peak counter
            gpu.use(30)
        gpu.use(10)
    assert inner.summary()["peak_gpu_mib"] == 30
    assert outer.summary()["peak_gpu_mib"] == 100


def test_a_cost_meter_without_a_gpu_reports_no_gpu_memory():
    if torch.cuda.is_initialized():
        pytest.skip("an earlier test started CUDA")
    with CostMeter() as meter:
        torch.ones(1000)
    assert meter.summary()["peak_gpu_mib"] == 0


def test_distances_match_scipy():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(7), size=5), rng.dirichlet(np.ones(7), size=5)
    tp, tq = torch.tensor(p), torch.tensor(q)
    assert np.allclose(js_divergence(tp, tq).numpy(), [jensenshannon(a, b) ** 2 for a, b in zip(p, q)])
    assert np.allclose(l2_distance(tp, tq).numpy(), np.linalg.norm(p - q, axis=1))
    assert np.allclose(symmetric_kl(tp, tq).numpy(), [0.5 * (entropy(a, b) + entropy(b, a)) for a, b in zip(p, q)])


@pytest.mark.parametrize("budget_mib", [1024, 0])
def test_frozen_teacher_outputs_are_computed_once_per_sample_within_the_budget(first_run, output_dir, budget_mib):
    protocol = UnlearnProtocol(small_config("LLMRec", **tiny_unlearn_config(output_dir / "out")))
    original, _ = protocol.original()
    original.eval()
    forget = protocol.subset_loader(protocol.forget_rows, 16)
    computed = []

    def teacher(interaction):
        computed.append(len(interaction))
        return answer_logits(original, interaction)

    memo = FrozenOutputs(protocol.config, budget_mib, forget)
    # Inside LLMRec's bfloat16 training loop, as the methods call it: the outputs stay float32.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for batch in forget:
            memo("teacher", batch, teacher)
    for batch in forget:  # another epoch, other batches
        with torch.no_grad():
            fresh = answer_logits(original, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            remembered = memo("teacher", batch, teacher)
        # Computed in another batch: equal up to float rounding (padding is masked).
        assert remembered.dtype == torch.float32
        assert torch.allclose(remembered, fresh, atol=1e-5)
    passes = 1 if budget_mib else 2
    assert sum(computed) == passes * len(protocol.forget_rows)
