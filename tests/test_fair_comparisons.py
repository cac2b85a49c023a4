"""Fair comparisons: one budget for every full fine-tune, and unlearn_tune, which searches every approximate
method with the same trials on a validation request that never touches the reported forget data (the
chosen values run on the reported request, and its receipt verifies)."""

import json
import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest

from recbole_unlearn import Config
from recbole_unlearn.unlearn.method import METHODS
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.tuning import check_tuning, tune, validation_protocol
from recbole_unlearn.unlearn.unlearn_trainer import UnlearnTrainer

from conftest import REPO, TINY_T5, deepfm_cli_run, quiet, run_cli

FULL_FINE_TUNES = ("neggrad", "label_flip", "npo", "simnpo", "scrub", "bad_teacher")


def resolved(config, method, key):
    return UnlearnTrainer.param(SimpleNamespace(config=config, name=method), key)


@pytest.mark.parametrize("model, rate", [("DeepFM", 1e-4), ("BPR", 1e-4), ("LLMRec", 5e-5)])
def test_every_full_fine_tune_gets_the_shared_budget_unless_a_key_overrides_it(workdir, model, rate):
    config = Config(model, "ml-100k", config_dict=quiet(llm_config=TINY_T5, scrub_learning_rate=1e-3))
    assert config["unlearn_learning_rate"] == rate
    for method in FULL_FINE_TUNES:
        expected = 1e-3 if method == "scrub" else rate
        assert resolved(config, method, "learning_rate") == expected, method
        assert resolved(config, method, "train_batch_size") == 32, method
        # One pass over the forget data each (the same optimizer steps); SCRUB's YAML keeps its 3 epochs.
        assert resolved(config, method, "epochs") == (3 if method == "scrub" else 1), method
    official_budget = [os.path.join(REPO, "docs", "examples", "official-budget.yaml")]
    official = Config(model, "ml-100k", config_file_list=official_budget, config_dict=quiet(llm_config=TINY_T5))
    assert [resolved(official, "neggrad", key) for key in ("train_batch_size", "epochs")] == [16, 4]


@pytest.mark.parametrize("selection", ["random", "core"])
def test_no_trial_reads_the_reported_forget_data(workdir, monkeypatch, selection):
    config = Config("DeepFM", "ml-100k", config_dict=quiet(epochs=1, forget_selection=selection, unlearn_tune=1))
    protocol = UnlearnProtocol(config)
    reported = set(protocol.forget_rows)
    validation = validation_protocol(protocol)
    assert len(validation.forget_rows) and not reported & set(validation.forget_rows)
    assert not reported & set(validation.retain_rows)
    # Drawn like the reported request: the same share of the users the reported one leaves.
    users = protocol.train_dataset.inter_feat["user_id"].numpy()
    left = np.unique(users[~protocol.removed_mask])
    assert len(np.unique(users[validation.forget_rows])) == round(0.2 * len(left))
    # Every training row a trial reads (its forget and retain batches) is outside the reported request.
    read = []
    for name in ("subset", "retained_subset"):
        original = getattr(UnlearnProtocol, name)
        monkeypatch.setattr(UnlearnProtocol, name, lambda self, rows, _f=original: read.append(rows) or _f(self, rows))
    monkeypatch.setattr("recbole_unlearn.unlearn.tuning.validation_protocol", lambda _: validation)
    # After one epoch the core request may leave no signal, and then no trial would run to be checked.
    monkeypatch.setattr(validation, "signal_p", lambda *_: 0.0)
    start = protocol.original()[0]
    read.clear()
    records = tune(protocol, [METHODS["neggrad"]], start)
    assert len(records["neggrad"]["trials"]) == 1 and read
    assert not reported & set(np.concatenate(read).tolist())


def test_a_validation_request_without_a_forgetting_signal_runs_no_trial(workdir, monkeypatch, caplog):
    protocol = UnlearnProtocol(Config("DeepFM", "ml-100k", config_dict=quiet(epochs=1, unlearn_tune=3)))
    start = protocol.original()[0]
    validation = validation_protocol(protocol)
    # A validation Retrain that is the Original itself: there is nothing to close on its forget set.
    monkeypatch.setattr(validation, "retrain", lambda model: (model, None))
    monkeypatch.setattr(validation, "unlearn", lambda *_: pytest.fail("a trial ran"))
    monkeypatch.setattr("recbole_unlearn.unlearn.tuning.validation_protocol", lambda _: validation)
    with caplog.at_level(logging.WARNING):
        records = tune(protocol, [METHODS["neggrad"], METHODS["simnpo"]], start)
    assert set(records) == {"neggrad", "simnpo"}
    assert all(record["trials"] == [] and record["values"] is None for record in records.values())
    assert not records["neggrad"]["signal_p"] < 0.05
    assert "the validation request has no forgetting signal" in caplog.text


def test_tuned_rows_name_their_values_and_their_receipts_verify_through_the_cli(tmp_path):
    run_dir, rows = deepfm_cli_run(tmp_path, "--unlearn_tune=2")
    with open(f"{run_dir}/receipt-neggrad.json") as f:
        receipt = json.load(f)
    search = receipt["tuning"]
    assert len(search["trials"]) == 2 and rows["neggrad"]["tune_seconds"] == search["seconds"] > 0
    if rows["neggrad"]["tuned"]:
        assert set(rows["neggrad"]["tuned_values"]) == {"learning_rate", "forget_weight"}
        assert receipt["hyperparameters"]["neggrad_learning_rate"] == search["values"]["learning_rate"]
    assert "tuned" not in rows["sisa"]  # an exact method has nothing to tune
    verified = run_cli("verify", f"{run_dir}/receipt-neggrad.json", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"unlearn_tune": -1}, "unlearn_tune must be a number of trials, 0 or more; got -1"),
        ({"unlearn_tune": 2, "forget_ids": ["1"]}, "it needs forget_ratio, not ids"),
        (
            {"neggrad_search": {"learnig_rate": ["loguniform", 1e-5, 1e-3]}},
            "names 'learnig_rate', but neggrad_learnig_rate",
        ),
        ({"neggrad_search": {"forget_weight": ["normal", 0, 1]}}, r"neggrad_search\['forget_weight'\] must be"),
    ],
)
def test_a_bad_search_names_its_key(settings, message):
    config = Config("DeepFM", "ml-100k", config_dict=quiet(**settings))
    with pytest.raises(ValueError, match=message):
        check_tuning(config, [METHODS["neggrad"]])
