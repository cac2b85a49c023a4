"""Unlearning receipts: what was forgotten, when, how, with what result; and their verification.

A receipt records the request (level, how many ids and a SHA-256 of the sorted ids; the ids themselves
only with ``unlearn_receipt_ids: True``), the method and its hyper-parameters, start and end time, the
SHA-256 of the Original, Retrain and unlearned checkpoints, the metrics, and the library versions.
``verify`` recomputes the hashes, rebuilds the data and the models from the files, re-evaluates the
metrics and says whether everything matches.
"""

import hashlib
import json
import math
import os

import numpy as np

from recbole_unlearn.config import Config
from recbole_unlearn.model.lora import merge_lora
from recbole_unlearn.provenance import file_sha256, library_versions
from recbole_unlearn.registry import UNLEARN_METHODS
from recbole_unlearn.unlearn.protocol import UnlearnProtocol, raw_users_items

RECEIPT_METRICS = (
    "forget_jsd", "forget_l2", "forget_jsd_yesno", "forget_l2_yesno", "forget_auc", "test_auc",
)
# Re-evaluation runs the same code on the same files: only float summation order may differ.
METRIC_TOLERANCE = 1e-6


def receipt_path(run_dir, method):
    return os.path.join(run_dir, f"receipt-{method}.json")


def forgotten_ids(protocol):
    """The raw ids of the request's level that the forget set covers (drawn or given), sorted."""
    users, items = raw_users_items(protocol.subset(protocol.forget_rows))
    level = protocol.request.level
    units = users if level == "user" else items if level == "item" else [f"{u}:{i}" for u, i in zip(users, items)]
    return sorted(set(np.asarray(units).tolist()))


def _files(paths, directory):
    return [{"path": os.path.relpath(path, directory), "sha256": file_sha256(path)} for path in paths]


def write_receipt(protocol, method, row, cost, previous=None):
    """``receipt-<method>.json`` in the run folder; its path. ``previous``: the receipt of the request
    whose unlearned model this run started from."""
    config = protocol.config
    ids = forgotten_ids(protocol)
    request = {
        "level": protocol.request.level,
        "ratio": None if protocol.request.ids else protocol.request.ratio,
        "seed": protocol.request.seed,
        "ids_count": len(ids),
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "forget_interactions": len(protocol.forget_rows),
        "forget_sha256": protocol.fingerprint["forget_sha256"],
        "removed_interactions": int(protocol.removed_mask.sum()),
        "removed_sha256": protocol.fingerprint["removed_sha256"],
    }
    if config["unlearn_receipt_ids"]:
        request["ids"] = ids
    prefix = f"{method.method}_"
    directory = protocol.run_dir
    receipt = {
        "model": config["model"],
        "dataset": config["dataset"],
        "split_sha256": protocol.fingerprint["split_sha256"],
        "previous_receipt": _files([previous], directory)[0] if previous else None,
        "request": request,
        "method": method.method,
        "hyperparameters": {k: v for k, v in config.final_config_dict.items() if k.startswith(prefix)},
        "started_at": cost.get("started_at"),
        "finished_at": cost.get("finished_at"),
        "original": _files(protocol.start_files or [protocol.files["original"]], directory),
        "retrain": _files([protocol.files["retrain"]], directory),
        "unlearned": _files([protocol.files[name] for name in method.file_names(config)], directory),
        "metrics": {key: row[key] for key in RECEIPT_METRICS},
        "config": json.loads(json.dumps(config.external_config_dict, default=str)),
        "library_versions": library_versions(),
    }
    path = receipt_path(directory, method.method)
    os.makedirs(directory, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(receipt, f, indent=2)
    os.replace(path + ".tmp", path)
    return path


def read_receipt(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f), os.path.dirname(os.path.abspath(path))


def rebuild(path):
    """The run a receipt describes, rebuilt from its files: (receipt, protocol, start model, Retrain
    model, unlearned model). The start model is the Original, or for a sequential request the model
    the previous receipt's run left (rebuilt the same way)."""
    receipt, directory = read_receipt(path)
    removed_before, start = None, None
    if receipt.get("previous_receipt"):
        _, previous, _, _, unlearned = rebuild(os.path.join(directory, receipt["previous_receipt"]["path"]))
        removed_before, start = previous.removed_mask, merge_lora(unlearned)
    overrides = {**receipt["config"], "unlearn_method": receipt["method"], "unlearn_after": None, "state": "warning"}
    config = Config(model=receipt["model"], dataset=receipt["dataset"], config_dict=overrides)
    protocol = UnlearnProtocol(config, removed_before)
    files = {role: [os.path.join(directory, e["path"]) for e in receipt[role]] for role in ("original", "retrain", "unlearned")}
    if start is None:
        start = protocol.load("original", files["original"][0])[0]
    reference = protocol.load("retrain", files["retrain"][0])[0]
    unlearned = UNLEARN_METHODS[receipt["method"]].load(protocol, start, files["unlearned"])
    return receipt, protocol, start, reference, unlearned


def verify(path):
    """Check a receipt against the files it names; a list of (check, ok, detail)."""
    receipt, directory = read_receipt(path)
    checks = []
    previous = receipt.get("previous_receipt")
    entries = [("previous receipt", previous)] if previous else []
    entries += [(role, entry) for role in ("original", "retrain", "unlearned") for entry in receipt[role]]
    for role, entry in entries:
        file = os.path.join(directory, entry["path"])
        actual = file_sha256(file) if os.path.isfile(file) else "missing"
        checks.append((f"{role} file {entry['path']}", actual == entry["sha256"], actual[:16]))
    if not all(ok for _, ok, _ in checks):
        return checks

    receipt, protocol, _, reference, unlearned = rebuild(path)
    for key in ("split_sha256", "forget_sha256", "removed_sha256"):
        recorded = receipt[key] if key in receipt else receipt["request"][key]
        checks.append((key, protocol.fingerprint[key] == recorded, protocol.fingerprint[key][:16]))
    row = protocol.evaluate(receipt["method"], unlearned, {"seconds": 0, "peak_rss_mib": 0}, reference)
    for key, recorded in receipt["metrics"].items():
        # NaN (e.g. AUC of a one-class forget set) matches NaN.
        same = abs(row[key] - recorded) <= METRIC_TOLERANCE or (math.isnan(row[key]) and math.isnan(recorded))
        checks.append((key, same, f"{row[key]:.6f} (receipt {recorded:.6f})"))
    return checks


def verify_main(argv):
    """``recbole-unlearn verify RECEIPT [RECEIPT ...]``: exit status 0 when every check passes."""
    all_ok = True
    for path in argv:
        print(f"Verifying {path}")
        for check, ok, detail in verify(path):
            print(f"  {'OK ' if ok else 'BAD'}  {check}: {detail}")
            all_ok &= ok
    print("All checks passed." if all_ok else "Some checks FAILED.")
    return 0 if all_ok else 1
