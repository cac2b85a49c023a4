"""RecBole's own entry points with the plug-in imported: its Config, run_recbole and objective_function
train LLMRec, and with ``unlearn_method`` set run the unlearning experiment inside RecBole's flow."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.quick_start import objective_function, run_recbole

from recbole_unlearn import Config
from recbole_unlearn.quick_start import train_and_test
from recbole_unlearn.unlearn.receipt import verify

from conftest import RANKING_TINY, TINY_T5, inside, quiet


def tiny(**overrides):
    """A tiny T5 on the quick window with 3 history items (short prompts)."""
    return quiet(llm_config=TINY_T5, epochs=1, history_length=3, **overrides)


def test_recbole_config_holds_our_values_for_llmrec():
    ours = Config(model="LLMRec", dataset="ml-100k").final_config_dict
    recbole = RecBoleConfig(model="LLMRec", dataset="ml-100k").final_config_dict
    assert set(recbole) == set(ours)
    # RecBole points ml-100k at its bundled copy through "config/.."; ours resolves the same folder.
    assert os.path.realpath(recbole.pop("data_path")) == os.path.realpath(ours.pop("data_path"))
    assert recbole == ours
    assert recbole["history_length"] == 10 and "movie_title" in recbole["load_col"]["item"]


def test_recbole_config_keeps_its_merge_order_and_its_own_models():
    config = RecBoleConfig(model="LLMRec", dataset="ml-100k", config_dict={"history_length": 3})
    assert config["history_length"] == 3
    assert "unlearn_method" not in RecBoleConfig(model="DeepFM", dataset="ml-100k")
    with pytest.raises(ValueError, match="did you mean 'e2urec_alpha'"):
        RecBoleConfig(model="LLMRec", dataset="ml-100k", config_dict={"e2urec_alfa": 1})


def test_a_model_section_of_a_file_holds_that_models_settings_below_config_dict(tmp_path):
    path = tmp_path / "two-models.yaml"
    sections = {"SASRec": {"train_batch_size": 256, "hidden_size": 32}, "BPR": {"embedding_size": 16}}
    path.write_text(yaml.safe_dump({"train_batch_size": 512, **sections}))
    sasrec = Config(model="SASRec", dataset="ml-100k", config_file_list=[str(path)])
    assert (sasrec["train_batch_size"], sasrec["hidden_size"]) == (256, 32)
    assert not set(sections) & set(sasrec.final_config_dict)
    bpr = RecBoleConfig(model="BPR", dataset="ml-100k", config_file_list=[str(path)])
    assert (bpr["train_batch_size"], bpr["embedding_size"]) == (512, 16)
    overridden = Config(
        model="SASRec", dataset="ml-100k", config_file_list=[str(path)], config_dict={"hidden_size": 48}
    )
    assert overridden["hidden_size"] == 48
    path.write_text(yaml.safe_dump({"SASrec": {"hidden_size": 32}}))
    with pytest.raises(ValueError, match="Config key 'SASrec' holds settings, but no RecBole model is called"):
        Config(model="SASRec", dataset="ml-100k", config_file_list=[str(path)])


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    with inside(tmp_path_factory.mktemp("stock")) as workdir:
        yield workdir, run_recbole(model="LLMRec", dataset="ml-100k", config_dict=tiny())


def test_run_recbole_trains_llmrec_as_our_train_and_test_does(stock):
    workdir, result = stock
    assert result["test_result"]["auc"] > 0.5
    ours = train_and_test("LLMRec", "ml-100k", config_dict=tiny())
    assert dict(result["test_result"]) == ours["test_result"]
    assert result["best_valid_score"] == ours["best_valid_score"]
    saved = os.listdir(workdir / "saved")
    assert any(name.endswith(".safetensors") for name in saved) and not any(name.endswith(".pth") for name in saved)


def verified_rows(output, model, method):
    """The rows of the one ``model`` run under ``output``, once its receipt for ``method`` verifies."""
    (run_dir,) = glob.glob(str(output / f"{model}-ml-100k-*"))
    checks = verify(os.path.join(run_dir, f"receipt-{method}.json"))
    assert all(ok for _, ok, _ in checks), [check for check in checks if not check[1]]
    with open(os.path.join(run_dir, "results.json")) as f:
        return {row["method"]: row for row in json.load(f)["results"]}


@pytest.fixture(scope="module")
def unlearning(stock):
    workdir, _ = stock
    config = tiny(unlearn_method="e2urec", unlearn_output_dir=str(workdir / "unlearn"))
    return workdir, run_recbole(model="LLMRec", dataset="ml-100k", config_dict=config)


def test_run_recbole_with_a_method_runs_the_experiment_and_writes_what_our_cli_writes(unlearning):
    workdir, result = unlearning
    rows = verified_rows(workdir / "unlearn", "LLMRec", "e2urec")
    assert list(rows) == ["original", "retrain", "e2urec"]
    test_result = result["test_result"]
    assert test_result["auc"] == rows["e2urec"]["test_auc"]
    assert test_result["forget_jsd_yesno"] == rows["e2urec"]["forget_jsd_yesno"]
    assert result["best_valid_result"]["auc"] == result["best_valid_score"]


def test_run_recbole_runs_apa_on_llmrec_and_its_receipt_verifies(unlearning):
    workdir, _ = unlearning
    output = workdir / "unlearn-apa"
    # The Original and Retrain come from the cache the e2urec run filled.
    shutil.copytree(workdir / "unlearn" / "cache", output / "cache")
    config = tiny(unlearn_method="apa", apa_n_shards=2, apa_epochs=1, unlearn_output_dir=str(output))
    result = run_recbole(model="LLMRec", dataset="ml-100k", config_dict=config)
    rows = verified_rows(output, "LLMRec", "apa")
    assert list(rows) == ["original", "retrain", "apa"]
    assert result["test_result"]["auc"] == rows["apa"]["test_auc"]


def test_objective_function_returns_the_unlearning_metrics_of_one_trial(unlearning, tmp_path, monkeypatch):
    workdir, _ = unlearning
    # A copy of the shared output folder: this trial's run folder stays out of the other tests'.
    output = shutil.copytree(workdir / "unlearn", tmp_path / "unlearn")
    monkeypatch.chdir(workdir)
    cached = sorted(os.listdir(output / "cache"))
    config = tiny(
        model="LLMRec",
        dataset="ml-100k",
        unlearn_method="e2urec",
        e2urec_alpha=1.0,
        unlearn_objective="forget_jsd_yesno",
        unlearn_output_dir=str(output),
    )
    result = objective_function(config_dict=config)
    assert result["model"] == "LLMRec" and result["valid_score_bigger"] is False
    assert result["best_valid_score"] == result["test_result"]["forget_jsd_yesno"] > 0
    assert {"auc", "logloss", "forget_auc", "forget_jsd", "unlearn_seconds"} <= set(result["test_result"])
    # A lower-is-better objective only orders the trials: the Original and Retrain still keep their best
    # valid AUC epoch, so the models run_recbole cached above serve this trial unchanged.
    assert sorted(os.listdir(output / "cache")) == cached


def test_several_methods_or_seeds_are_refused_by_a_recbole_trainer(workdir):
    with pytest.raises(ValueError, match="a RecBole trainer reports one unlearned model"):
        run_recbole(model="LLMRec", dataset="ml-100k", config_dict=tiny(unlearn_method="neggrad,e2urec"))
    with pytest.raises(ValueError, match="unlearn_seeds: a RecBole trainer reports one run"):
        run_recbole(model="LLMRec", dataset="ml-100k", config_dict=tiny(unlearn_method="e2urec", unlearn_seeds=[1, 2]))


@pytest.mark.parametrize(
    ("model", "method"),
    [("DeepFM", "neggrad"), ("SASRec", "neggrad"), ("DeepFM", "receraser"), ("SASRec", "receraser")],
)
def test_run_recbole_runs_the_experiment_for_recboles_own_models(workdir, model, method):
    output = workdir / f"unlearn-{method}"
    config = quiet(unlearn_method=method, epochs=1, unlearn_output_dir=str(output), **RANKING_TINY)
    result = run_recbole(model=model, dataset="ml-100k", config_dict=config)
    rows = verified_rows(output, model, method)
    assert list(rows) == ["original", "retrain", method]
    utility = "ndcg@20" if model == "SASRec" else "auc"
    assert result["test_result"][utility] == rows[method][f"test_{utility}"]
    # Without a method, RecBole's own model is configured as always (SASRec needs CE's setting, as in RecBole).
    plain = RecBoleConfig(
        model=model, dataset="ml-100k", config_dict={"unlearn_method": "none", "train_neg_sample_args": None}
    )
    assert plain["model"] == model and "forget_level" not in plain


# The shape of RecBole's repository script run_recbole.py: it never imports recbole_unlearn.
RECBOLE_SCRIPT = """
import argparse

from recbole.quick_start import run

parser = argparse.ArgumentParser()
parser.add_argument("--model", "-m", type=str, default="BPR")
parser.add_argument("--dataset", "-d", type=str, default="ml-100k")
parser.add_argument("--config_files", type=str, default=None)
args, _ = parser.parse_known_args()
config_file_list = args.config_files.strip().split(" ") if args.config_files else None
run(args.model, args.dataset, config_file_list=config_file_list)
"""


def test_recboles_own_script_finds_and_trains_llmrec_without_importing_the_plugin(stock, tmp_path):
    _, result = stock
    (tmp_path / "run_recbole.py").write_text(RECBOLE_SCRIPT)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(tiny(state="info")))))
    out = subprocess.run(
        [sys.executable, "run_recbole.py", "--model=LLMRec", "--dataset=ml-100k", "--config_files=tiny.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    logged = re.search(r"test result: OrderedDict\(\[\('auc', ([0-9.]+)\)", out.stdout + out.stderr)
    assert logged and float(logged.group(1)) == result["test_result"]["auc"]
    assert glob.glob(str(tmp_path / "saved" / "LLMRec-*.safetensors"))


def test_recboles_own_models_are_configured_as_without_the_plugin():
    code = (
        "from recbole.config import Config; "
        "print(sorted(Config(model='DeepFM', dataset='ml-100k').final_config_dict.items(), key=str))"
    )
    without = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    plugged = subprocess.run(
        [sys.executable, "-c", "import recbole_unlearn; " + code], capture_output=True, text=True, check=True
    )
    assert plugged.stdout == without.stdout
