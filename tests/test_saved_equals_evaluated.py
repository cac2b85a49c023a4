"""The model a method returns, the model evaluated and the model saved are one and the same, buffers included.

DCNV2's MLP has BatchNorm: a training-mode pass (a method's training, or a probe forward) moves its running
statistics, which a checkpoint of the trainable parameters alone would leave behind.
"""

import copy

import pytest
import recbole.model.context_aware_recommender as context_aware
import torch
from test_builtin_unlearn import ctr_config

from recbole_unlearn import Config
from recbole_unlearn.checkpoint import changing
from recbole_unlearn.model.answer import answer_logits
from recbole_unlearn.unlearn.method import METHODS, get_unlearn_methods
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.receipt import failure_kind

from conftest import inside, run_cli, tiny_unlearn_config, write_config_file


def outputs_on(model, batch):
    model.eval()
    with torch.no_grad():
        return answer_logits(model, batch)


def protocol_of(directory, model, config_dict):
    with inside(directory):
        protocol = UnlearnProtocol(Config(model, "ml-100k", config_dict=config_dict))
        start, _ = protocol.original()
        return protocol, start


@pytest.fixture(scope="module")
def dcnv2_protocol(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dcnv2")
    return protocol_of(directory, "DCNV2", ctr_config(directory / "out", unlearn_method="all"))


@pytest.fixture(scope="module")
def llmrec_protocol(tmp_path_factory):
    directory = tmp_path_factory.mktemp("llmrec")
    return protocol_of(directory, "LLMRec", tiny_unlearn_config(directory / "out", unlearn_method="all"))


# Every fine-tune on DCNV2 (BatchNorm), its shards with ``-m slow``; on LLMRec one of each way of saving
# (adapters, shards, a full fine-tune's trainable weights), every method with ``-m slow``.
DEFAULT_CASES = {"dcnv2": [name for name in METHODS if name != "sisa"], "llmrec": ["e2urec", "sisa", "neggrad"]}
CASES = [
    pytest.param(model, name, marks=[] if name in DEFAULT_CASES[model] else [pytest.mark.slow])
    for model in ("dcnv2", "llmrec")
    for name, method in METHODS.items()
    if not method.is_retrain
]


@pytest.mark.parametrize("model, name", CASES)
def test_a_reloaded_unlearned_model_answers_bit_for_bit_as_the_one_evaluated(request, model, name):
    protocol, start = request.getfixturevalue(f"{model}_protocol")
    method = METHODS[name]
    original_before = copy.deepcopy(start.state_dict())
    unlearned, _ = protocol.unlearn(method, start)
    assert all(torch.equal(tensor, original_before[key]) for key, tensor in start.state_dict().items())
    # As ``verify`` rebuilds it: a fresh Original read from its file (in training mode, as built).
    fresh_start, _ = protocol.load("original", protocol.files["original"])
    reloaded = method.load(protocol, fresh_start, [protocol.files[file] for file in method.file_names(protocol.config)])
    for key, tensor in changing(unlearned).items():
        assert torch.equal(tensor, reloaded.state_dict()[key]), key
    for batch in (protocol.example, next(iter(protocol.eval_loaders["test"]))[0]):
        assert torch.equal(outputs_on(unlearned, batch), outputs_on(reloaded, batch))


def test_influence_curvature_passes_leave_batchnorm_statistics_as_the_originals(dcnv2_protocol):
    protocol, start = dcnv2_protocol
    in_training_mode = copy.deepcopy(start).train()  # as a model is when built or loaded
    unlearned, _ = protocol.unlearn(METHODS["influence"], in_training_mode)
    buffers = dict(unlearned.named_buffers())
    assert buffers and all(torch.equal(buffer, buffers[name]) for name, buffer in start.named_buffers())


def test_verify_says_when_the_files_match_but_the_metrics_do_not():
    checks = [("original file a", True, ""), ("split_sha256", True, ""), ("test_auc", False, "0.1 (receipt 0.2)")]
    assert failure_kind(checks).startswith("the files match but the re-evaluation differs")
    assert failure_kind([("unlearned file b", False, "missing"), *checks]).startswith("a file is missing")
    assert failure_kind(checks[:2]) is None


def trainable_context_models():
    """RecBole's context-aware models in its own package (LightGBM and XGBoost live elsewhere)."""
    return sorted(name for name in dir(context_aware) if isinstance(getattr(context_aware, name), type))


@pytest.mark.slow
@pytest.mark.parametrize("model", trainable_context_models())
def test_every_method_on_every_context_aware_model_verifies_through_the_cli(model, tmp_path):
    config_file = write_config_file(tmp_path / "run.yaml", unlearn_output_dir=str(tmp_path / "out"))
    out = run_cli(
        f"--model={model}", "--unlearn_method=all", f"--config_files={config_file}", cwd=tmp_path, timeout=1800
    )
    if out.returncode == 2 and "cannot be unlearned" in out.stderr:
        pytest.skip(out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    (run_dir,) = (tmp_path / "out").glob(f"{model}-ml-100k-*")
    receipts = sorted(str(path) for path in run_dir.glob("receipt-*.json"))
    assert len(receipts) == len(get_unlearn_methods("all"))
    checked = run_cli("verify", *receipts, cwd=tmp_path, timeout=1800)
    assert checked.returncode == 0, checked.stdout[-4000:]
