"""Auditing: receipts, their verification, provenance-checked checkpoints, and resuming a killed run."""

import glob
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import recbole_unlearn
from recbole_unlearn import Config
from recbole_unlearn.data.fingerprints import interaction_tokens
from recbole_unlearn.provenance import code_sha256, file_sha256, machine, source_sha256
from recbole_unlearn.quick_start import unlearn_one
from recbole_unlearn.unlearn.methods.sisa import SISA
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.receipt import code_comparison, verify

from conftest import RUN_SCRIPT, TINY_T5, inside, quiet, registered_methods, run_cli, write_config_file


def config(output_dir, **overrides):
    return quiet(unlearn_output_dir=str(output_dir), **overrides)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audit")
    with inside(workdir):
        yield unlearn_one("DeepFM", "ml-100k", config_dict=config(workdir / "out"))


def receipt_of(run, method):
    with open(os.path.join(run["run_dir"], f"receipt-{method}.json")) as f:
        return json.load(f)


def test_every_method_writes_a_receipt_without_raw_ids(run):
    rows = {row["method"]: row for row in run["rows"]}
    for method in registered_methods():
        receipt = receipt_of(run, method)
        request = receipt["request"]
        assert receipt["method"] == method and "ids" not in request
        assert request["ids_count"] > 0 and request["forget_interactions"] == run["context"]["forget_interactions"]
        assert request["forget_sha256"] == run["context"]["forget_sha256"]
        assert receipt["metrics"]["forget_jsd_yesno"] == rows[method]["forget_jsd_yesno"]
        assert receipt["started_at"] <= receipt["finished_at"]
        assert receipt["machine"] == machine() and receipt["code_sha256"] == code_sha256()
        for role in ("original", "retrain", "unlearned"):
            for entry in receipt[role]:
                assert file_sha256(os.path.join(run["run_dir"], entry["path"])) == entry["sha256"]
    assert len(receipt_of(run, "sisa")["unlearned"]) == 4
    assert receipt_of(run, "e2urec")["hyperparameters"]["e2urec_lora_r"] == 4


def test_the_code_digest_follows_every_python_file_of_the_package(tmp_path):
    package = os.path.dirname(recbole_unlearn.__file__)
    copy = shutil.copytree(package, tmp_path / "copy", ignore=shutil.ignore_patterns("__pycache__"))
    assert source_sha256(copy) == code_sha256()
    method = copy / "unlearn" / "methods" / "e2urec.py"
    method.write_text(method.read_text() + "# an edit\n")
    assert source_sha256(copy) != code_sha256()


def test_receipt_ids_hash_names_the_forgotten_users(run, workdir):
    with_ids = unlearn_one(
        "DeepFM", "ml-100k", config_dict=config(workdir / "out", unlearn_method="neggrad", unlearn_receipt_ids=True)
    )
    request = receipt_of(with_ids, "neggrad")["request"]
    assert len(request["ids"]) == request["ids_count"] and request["ids"] == sorted(request["ids"])
    assert hashlib.sha256("\n".join(request["ids"]).encode()).hexdigest() == request["ids_sha256"]
    assert request["ids_sha256"] == receipt_of(run, "neggrad")["request"]["ids_sha256"]


@pytest.mark.parametrize("method", registered_methods())
def test_verify_recomputes_hashes_and_metrics(run, method):
    checks = verify(os.path.join(run["run_dir"], f"receipt-{method}.json"))
    assert all(ok for _, ok, _ in checks), [c for c in checks if not c[1]]
    assert {"forget_jsd_yesno", "test_auc", "split_sha256", "forget_sha256"} <= {name for name, _, _ in checks}


def copy_of(run, tmp_path):
    """The run's folder (and the cache beside it) copied, for a test that tampers with files."""
    out_dir = shutil.copytree(os.path.dirname(run["run_dir"]), tmp_path / "out")
    return {"run_dir": str(out_dir / os.path.basename(run["run_dir"]))}


def test_verify_catches_a_changed_checkpoint_and_a_changed_metric(run, tmp_path):
    run = copy_of(run, tmp_path)
    receipt = receipt_of(run, "label_flip")
    receipt["metrics"]["forget_jsd_yesno"] += 0.01
    # Within float noise of a re-evaluation (a flipped pair of near-tied MIA scores): still verified.
    receipt["metrics"]["forget_privleak"] *= 1 + 5e-5
    edited = os.path.join(run["run_dir"], "receipt-edited.json")
    with open(edited, "w") as f:
        json.dump(receipt, f)
    failed = [name for name, ok, _ in verify(edited) if not ok]
    assert failed == ["forget_jsd_yesno"]

    unlearned = os.path.join(run["run_dir"], receipt["unlearned"][0]["path"])
    data = bytearray(open(unlearned, "rb").read())
    data[-3] ^= 0xFF
    open(unlearned, "wb").write(bytes(data))
    failed = [name for name, ok, _ in verify(os.path.join(run["run_dir"], "receipt-label_flip.json")) if not ok]
    assert failed == [f"unlearned file {receipt['unlearned'][0]['path']}"]


def test_verify_command_line(run):
    receipt = os.path.join(run["run_dir"], "receipt-neggrad.json")
    out = run_cli("verify", receipt, cwd=os.path.dirname(os.path.dirname(run["run_dir"])), timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "All checks passed." in out.stdout and "OK   forget_jsd_yesno" in out.stdout
    assert f"code: the receipt's ({code_sha256()[:16]})" in out.stdout


def test_verify_says_when_the_receipt_was_written_by_other_code(run):
    receipt = receipt_of(run, "neggrad")
    receipt["code_sha256"] = "0" * 64
    edited = os.path.join(run["run_dir"], "receipt-other-code.json")
    with open(edited, "w") as f:
        json.dump(receipt, f)
    assert code_comparison(edited).startswith(f"differs (receipt {'0' * 16}, running {code_sha256()[:16]})")
    del receipt["code_sha256"]
    with open(edited, "w") as f:
        json.dump(receipt, f)
    assert code_comparison(edited).startswith("not recorded in the receipt")


def cached(directory, pattern):
    """The cached checkpoints whose names match ``<pattern>-<key>``, by name without the key."""
    paths = glob.glob(str(directory / "saved" / "unlearn" / "cache" / f"{pattern}-*.safetensors"))
    return {os.path.basename(path).rsplit("-", 1)[0]: path for path in paths}


# What is killed mid-training, and the epoch after which it is killed: DeepFM's dropout, RecBole's shuffle,
# T5's dropout and a SISA shard trained before the request (one forgotten user hits one of the 4 shards) draw
# from random states the resumed run must restore.
DEEPFM = {"epochs": 6, "stopping_step": 100, "train_batch_size": 64, "dropout_prob": 0.2}
# (method, the epoch after which the run is killed, its settings, options only the resumed run adds).
# The Original's cache key leaves out the forget request, so a run with another one resumes it.
KILLED_TRAININGS = {
    "DeepFM-retrain": ("retrain", 3, DEEPFM, []),
    "LLMRec-original": (
        "retrain",
        1,
        {"llm_config": {**TINY_T5, "dropout_rate": 0.1}, "epochs": 3},
        ["--forget_ratio=0.3"],
    ),
    "DeepFM-sisa-shard*": ("sisa", 2, {**DEEPFM, "epochs": 2, "sisa_epochs": 8, "forget_ratio": 0.03}, []),
}


# A SISA shard resumes by the same code as DeepFM's Retrain, and LLMRec's Original as DeepFM's (its dropout
# draws from the same torch state): both run with ``-m slow``.
@pytest.mark.parametrize(
    "killed",
    [name if name == "DeepFM-retrain" else pytest.param(name, marks=pytest.mark.slow) for name in KILLED_TRAININGS],
)
def test_a_killed_training_resumes_to_the_uninterrupted_model_and_leaves_the_original_untouched(tmp_path, killed):
    method, kill_after, settings, resumed_options = KILLED_TRAININGS[killed]
    model = killed.split("-")[0]
    command = [sys.executable, RUN_SCRIPT, f"--model={model}", "--config_files=run.yaml", f"--unlearn_method={method}"]
    settings = {"state": "info", "history_length": 3, **settings}
    uninterrupted = tmp_path / "uninterrupted"
    uninterrupted.mkdir()
    write_config_file(uninterrupted / "run.yaml", **settings)
    reference = subprocess.run(command, cwd=uninterrupted, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]
    tmp_path = tmp_path / "killed"
    tmp_path.mkdir()
    write_config_file(tmp_path / "run.yaml", **settings)
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = str(tmp_path / "saved" / "unlearn" / "cache" / "partial" / f"{killed}-*" / "latest.json")
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        found = glob.glob(pointer)
        if found and int(json.load(open(found[0]))["state"].removeprefix("epoch-")) > kill_after:
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert first.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    originals = {path: file_sha256(path) for path in cached(tmp_path, f"{model}-original").values()}
    assert not cached(tmp_path, killed).keys() >= cached(uninterrupted, killed).keys()

    second = subprocess.run(command + resumed_options, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    logs = "".join(open(path).read() for path in glob.glob(str(tmp_path / "log" / model / "*.log")))
    assert int(logs.split("Resuming training from epoch ")[1].split()[0]) > kill_after
    assert {path: file_sha256(path) for path in originals} == originals
    assert not glob.glob(str(tmp_path / "saved" / "unlearn" / "cache" / "partial" / "*" / "latest.json"))
    # The epochs before the kill count towards the best epoch's time (it may be one of them).
    (results,) = glob.glob(str(tmp_path / "saved" / "unlearn" / f"{model}-ml-100k-*" / "results.json"))
    (row,) = [row for row in json.load(open(results))["results"] if row["method"] == method]
    assert row["seconds_to_best"] > 0
    resumed, reference = cached(tmp_path, killed), cached(uninterrupted, killed)
    assert resumed.keys() == reference.keys()
    for name in reference:
        resumed_tensors, reference_tensors = load_file(resumed[name]), load_file(reference[name])
        assert resumed_tensors.keys() == reference_tensors.keys()
        assert all(torch.equal(resumed_tensors[key], reference_tensors[key]) for key in reference_tensors), name


def test_a_second_request_continues_from_the_unlearned_model_and_chains_receipts(run, workdir):
    first_receipt = os.path.join(run["run_dir"], "receipt-e2urec.json")
    first = receipt_of(run, "e2urec")
    config_dir = os.path.dirname(os.path.dirname(run["run_dir"]))
    second = unlearn_one(
        "DeepFM",
        "ml-100k",
        config_dict=config(
            config_dir,
            forget_level="item",
            forget_ratio=0.05,
            unlearn_method="retrain,neggrad,e2urec",
            unlearn_after=first_receipt,
        ),
    )
    rows = {row["method"]: row for row in second["rows"]}
    assert list(rows) == ["previous", "retrain", "neggrad", "e2urec"]
    receipt = receipt_of(second, "e2urec")
    assert receipt["previous_receipt"]["sha256"] == file_sha256(first_receipt)
    assert receipt["request"]["removed_interactions"] == (
        first["request"]["forget_interactions"] + receipt["request"]["forget_interactions"]
    )
    assert receipt["retrain"][0]["sha256"] != first["retrain"][0]["sha256"]
    checks = verify(os.path.join(second["run_dir"], "receipt-e2urec.json"))
    assert all(ok for _, ok, _ in checks), [c for c in checks if not c[1]]


def test_a_second_request_that_adds_nothing_is_refused(run, workdir):
    with pytest.raises(ValueError, match="only names data earlier requests already removed"):
        unlearn_one(
            "DeepFM",
            "ml-100k",
            config_dict=config(
                workdir / "out",
                unlearn_method="neggrad",
                unlearn_after=os.path.join(run["run_dir"], "receipt-neggrad.json"),
            ),
        )


# A one-interaction forget set has one class: its AUC is NaN, as sklearn warns.
@pytest.mark.filterwarnings("ignore:Only one class is present in y_true")
def test_sisa_continues_from_its_own_shards(run, workdir):
    first_receipt = os.path.join(run["run_dir"], "receipt-sisa.json")
    config_dir = os.path.dirname(os.path.dirname(run["run_dir"]))
    # One retained interaction: request 2 touches one shard only.
    first = UnlearnProtocol(Config(model="DeepFM", dataset="ml-100k", config_dict=config(config_dir)))
    (pair,) = [token.rpartition(":")[0] for token in interaction_tokens(first.subset(first.retain_rows[:1]))]
    second = unlearn_one(
        "DeepFM",
        "ml-100k",
        config_dict=config(
            config_dir,
            forget_level="interaction",
            forget_ids=[pair],
            unlearn_method="sisa",
            unlearn_after=first_receipt,
        ),
    )
    first_shards = [e["sha256"] for e in receipt_of(run, "sisa")["unlearned"]]
    second_receipt = receipt_of(second, "sisa")
    (rebuilt,) = second_receipt["rebuilt"]  # the one shard holding the forgotten interaction
    for name, before, after in zip(SISA.file_names(first.config), first_shards, second_receipt["unlearned"]):
        # Only the rebuilt shard is retrained; the others are the first run's files, byte for byte.
        assert (before != after["sha256"]) == (name == rebuilt), name
    checks = verify(os.path.join(second["run_dir"], "receipt-sisa.json"))
    assert all(ok for _, ok, _ in checks), [c for c in checks if not c[1]]


def test_sisa_cannot_continue_from_a_fine_tuned_model(run, workdir):
    with pytest.raises(ValueError, match=r"method\(s\) \['sisa'\] cannot continue from a e2urec run"):
        unlearn_one(
            "DeepFM",
            "ml-100k",
            config_dict=config(
                workdir / "out",
                forget_level="item",
                forget_ratio=0.05,
                unlearn_method="sisa",
                unlearn_after=os.path.join(run["run_dir"], "receipt-e2urec.json"),
            ),
        )


def test_a_second_request_given_on_the_command_line_runs_and_its_chained_receipt_verifies(run, workdir):
    # Rebuilding the first run must use only what its receipt records, not this command line's flags.
    first_receipt = os.path.join(run["run_dir"], "receipt-e2urec.json")
    output_dir = os.path.dirname(run["run_dir"])
    first = UnlearnProtocol(Config(model="DeepFM", dataset="ml-100k", config_dict=config(output_dir)))
    pairs = [token.rpartition(":")[0] for token in interaction_tokens(first.subset(first.retain_rows[:3]))]
    (workdir / "forget.txt").write_text("\n".join(pairs) + "\n")
    write_config_file(workdir / "run.yaml", unlearn_output_dir=str(output_dir))
    command = [
        sys.executable,
        RUN_SCRIPT,
        "--model=DeepFM",
        "--config_files=run.yaml",
        "--forget_level=interaction",
        f"--forget_file={workdir / 'forget.txt'}",
        "--unlearn_method=e2urec",
        f"--unlearn_after={first_receipt}",
    ]
    second = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    run_dir = second.stdout.split("Results: ")[1].split()[0]
    receipt = os.path.join(run_dir, "receipt-e2urec.json")
    with open(receipt) as f:
        assert json.load(f)["request"]["forget_interactions"] == 3
    checked = run_cli("verify", receipt, cwd=workdir, timeout=300)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "OK   previous receipt file" in checked.stdout and "All checks passed." in checked.stdout


def test_verify_on_the_command_line_names_each_kind_of_failure(run, tmp_path):
    """Each kind of failure exits 1 and says what failed; the tampering happens in a copy of the run."""
    run_dir = pathlib.Path(copy_of(run, tmp_path)["run_dir"])
    tampered = {}

    def write(name, method, change):
        receipt = receipt_of({"run_dir": run_dir}, method)
        change(receipt)
        tampered[name] = run_dir / f"receipt-{name}.json"
        tampered[name].write_text(json.dumps(receipt))

    write("metric", "e2urec", lambda r: r["metrics"].update(forget_jsd_yesno=r["metrics"]["forget_jsd_yesno"] + 0.01))
    write("hyperparameters", "e2urec", lambda r: r["hyperparameters"].update(e2urec_alpha=3.0))
    write("fingerprint", "neggrad", lambda r: r.update(split_sha256="0" * 64))
    missing = receipt_of({"run_dir": run_dir}, "scrub")["unlearned"][0]["path"]
    os.remove(run_dir / missing)
    tampered["missing file"] = run_dir / "receipt-scrub.json"
    expected = {
        "metric": "the files match but the re-evaluation differs",
        "hyperparameters": "the hyper-parameters or options the receipt records are not those",
        "fingerprint": "the data or the forget request rebuilt from the receipt differ",
        "missing file": "a file is missing or is not the file the receipt recorded",
    }
    out = run_cli("verify", *map(str, tampered.values()), cwd=tmp_path, timeout=600)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    reports = out.stdout.split("Verifying ")[1:]
    for (name, path), report in zip(tampered.items(), reports):
        assert report.startswith(str(path)) and f"FAILED: {expected[name]}" in report, report
    assert "BAD  hyperparameters: ['e2urec_alpha'] differ" in reports[1]
    assert out.stdout.strip().endswith("Some checks FAILED.")
