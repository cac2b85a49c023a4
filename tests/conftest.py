"""Shared fixtures and helpers: small real slices of ML-100K, tiny models, per-test working folders."""

import glob
import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest
import torch
import yaml
from recbole.data import create_dataset, data_preparation

import recbole_unlearn  # noqa: F401  (registers the plug-in with RecBole)
from recbole_unlearn import Config
from recbole_unlearn.unlearn.method import METHODS

# The last 5,000 ratings of ML-100K (timestamp >= 891717908): 3,000 train / 1,000 valid / 1,000 test, for
# tests that need a model to learn something or name a known interaction.
SMALL_WINDOW = {"timestamp": "[891717908,inf)"}
# The last 3,000 ratings of ML-100K: enough to run every method, quick enough for each backbone kind; the
# default of every test run (``quiet``).
QUICK_WINDOW = {"timestamp": "[892431586,inf)"}
TINY_T5 = {
    "d_model": 64,
    "d_ff": 128,
    "d_kv": 16,
    "num_heads": 4,
    "num_layers": 1,
    "num_decoder_layers": 1,
    "dropout_rate": 0.0,
}
# Small ranking models: narrow embeddings, one attention layer, short histories, two SISA shards.
RANKING_TINY = {
    "embedding_size": 16,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 1,
    "MAX_ITEM_LIST_LENGTH": 10,
    "train_batch_size": 256,
    "sisa_n_shards": 2,
    "receraser_n_shards": 2,
}
# pytest-xdist runs one worker per core (pytest.ini): each worker, and every process it starts, gets one
# torch thread, so that workers do not oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_SCRIPT = os.path.join(REPO, "run_recbole_unlearn.py")


def run_cli(*args, cwd, timeout=600, env=None):
    """Our command line (``run_recbole_unlearn.py *args``) in a subprocess, as a user runs it."""
    command = [sys.executable, RUN_SCRIPT, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def chained_receipts(first_run_dir, method):
    """The unlearned files of ``method``'s receipt in ``first_run_dir``, and the path and content of the
    one other receipt of ``method`` in the same output folder (the request that continued that run)."""
    with open(os.path.join(first_run_dir, f"receipt-{method}.json")) as f:
        before = json.load(f)["unlearned"]
    (path,) = [
        path
        for path in glob.glob(os.path.join(os.path.dirname(first_run_dir), "*", f"receipt-{method}.json"))
        if os.path.dirname(path) != first_run_dir
    ]
    with open(path) as f:
        return before, path, json.load(f)


def continue_with_a_retained_user(protocol, first_run_dir, method, model, config_file, cwd, *options):
    """Continue ``method``'s run in ``first_run_dir`` through the command line with a request for one user it
    retained (so the request touches that user's shard only); the two runs' ``chained_receipts``."""
    train = protocol.train_dataset
    user = train.id2token("user_id", train.inter_feat["user_id"][protocol.retain_rows[0]])
    out = run_cli(
        f"--model={model}",
        f"--config_files={config_file}",
        *options,
        f"--forget_ids=['{user}']",
        f"--unlearn_after={os.path.join(first_run_dir, f'receipt-{method}.json')}",
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return chained_receipts(first_run_dir, method)


def deepfm_cli_run(directory, *options):
    """A DeepFM run of NegGrad and SISA on the tests' slice through the command line with ``options``: its
    run folder and its result rows by method."""
    config_file = write_config_file(directory / "run.yaml", epochs=1, sisa_epochs=1)
    arguments = ["--model=DeepFM", f"--config_files={config_file}", "--unlearn_method=neggrad,sisa", *options]
    out = run_cli(*arguments, cwd=directory)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = glob.glob(str(directory / "saved" / "unlearn" / "DeepFM-ml-100k-*"))
    with open(os.path.join(run_dir, "results.json")) as f:
        return run_dir, {row["method"]: row for row in json.load(f)["results"]}


# Methods for one model family only: APA trains a language model's adapters; RecEraser's attention reads
# embedding rows a language model lacks.
ONLY_FOR = {"apa": "language", "receraser": "other"}


def registered_methods(language_model=False):
    """Every registered method a full run of that model family runs, in ``unlearn_method: all`` order."""
    family = "language" if language_model else "other"
    return [name for name in METHODS if ONLY_FOR.get(name, family) == family]


def result_rows(language_model=False):
    """The rows of a full run: the Original, Retrain, then every other method that applies."""
    return [
        "original",
        "retrain",
        *(name for name in registered_methods(language_model) if not METHODS[name].is_retrain),
    ]


def rows_by_method(run):
    return {row["method"]: row for row in run["rows"]}


@contextmanager
def inside(directory):
    """Work in ``directory`` (for module-scoped fixtures); the previous folder is restored after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        yield directory


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Each test writes logs and checkpoints under its own temp folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# The influence update's curvature products are its whole cost: a few on a small sample in tests.
CHEAP_INFLUENCE = {"influence_hessian_samples": 64, "influence_cg_iterations": 3}


def quiet(**overrides):
    """Config keys every test run uses: CPU, no progress bars, warnings only, the quick window, a cheap
    influence update, two RecEraser shards."""
    return {
        "use_gpu": False,
        "state": "warning",
        "show_progress": False,
        "val_interval": QUICK_WINDOW,
        "receraser_n_shards": 2,
        **CHEAP_INFLUENCE,
        **overrides,
    }


def write_config_file(path, **settings):
    """``quiet`` settings and ``settings`` as a YAML file at ``path`` (for the command line); its name."""
    path.write_text(yaml.safe_dump(quiet(**settings)))
    return path.name


def small_config(model="LLMRec", dataset="ml-100k", config_file_list=None, **overrides):
    config_dict = quiet(llm_config=TINY_T5, epochs=1, checkpoint_dir=os.path.join(os.getcwd(), "saved"))
    config_dict.update(overrides)
    return Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)


def tiny_unlearn_config(output_dir, **overrides):
    """A tiny-T5 LLMRec protocol on the quick window with 3 history items (prompts of ~60 tokens, not ~130),
    writing under ``output_dir``."""
    settings = {"llm_config": TINY_T5, "epochs": 1, "sisa_epochs": 1, "history_length": 3, **overrides}
    return quiet(unlearn_output_dir=str(output_dir), **settings)


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    """The training split of the tests' ML-100K slice (a DeepFM dataset: no prompts to build)."""
    with inside(tmp_path_factory.mktemp("train")):
        config = small_config("DeepFM")
        train_data, _, _ = data_preparation(config, create_dataset(config))
    return train_data._dataset
