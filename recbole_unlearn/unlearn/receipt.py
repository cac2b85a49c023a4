"""Unlearning receipts: what was forgotten, when, how, with what result; and their verification.

A receipt records the request (level, selection, seed and the run's seeds, how many ids and a SHA-256 of
the sorted ids; the ids themselves only with ``unlearn_receipt_ids: True``), the method and its
hyper-parameters, start and end time, the SHA-256 of the Original, Retrain and unlearned checkpoints, the
metrics, and the library versions.
``verify`` recomputes the hashes, rebuilds the data and the models from the files, re-evaluates the
metrics and says whether everything matches.
"""

import hashlib
import json
import math
import os
from typing import NamedTuple

import numpy as np

from recbole_unlearn.checkpoint import read_provenance
from recbole_unlearn.config import RecordedConfig
from recbole_unlearn.data.fingerprints import raw_users_items
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.cost import NO_COST
from recbole_unlearn.evaluation.metrics import receipt_metrics
from recbole_unlearn.model.lora import merge_lora
from recbole_unlearn.precision import training_precision
from recbole_unlearn.provenance import code_sha256, file_sha256, library_versions, machine
from recbole_unlearn.unlearn.method import METHODS, hyperparameters
from recbole_unlearn.unlearn.protocol import UnlearnProtocol

# Re-evaluation runs the same code on the same files: only float summation order may differ, and with it
# the order of near-tied scores, which moves a rank metric by a pair or two (privleak, a ratio of MIA
# AUCs in percent, by ~2e-5 per pair on ML-100K's forget set); tables show 4 digits.
METRIC_RELATIVE_TOLERANCE = 1e-4
FINGERPRINTS = ("split_sha256", "forget_sha256", "removed_sha256")
METRIC_ABSOLUTE_TOLERANCE = 1e-6


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


def write_receipt(protocol, method, row, cost, previous=None, search=None):
    """``receipt-<method>.json`` in the run folder; its path. ``previous``: the receipt of the request
    whose unlearned model this run started from; ``search``: ``unlearn_tune``'s record of the method."""
    config = protocol.config
    ids = forgotten_ids(protocol)
    request = {
        "level": protocol.request.level,
        "ratio": None if protocol.request.ids else protocol.request.ratio,
        "selection": None if protocol.request.ids else protocol.request.selection,
        "seed": protocol.request.seed,
        "seeds": config["unlearn_seeds"],
        "ids_count": len(ids),
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "forget_interactions": len(protocol.forget_rows),
        "forget_sha256": protocol.fingerprints["forget_sha256"],
        "removed_interactions": int(protocol.removed_mask.sum()),
        "removed_sha256": protocol.fingerprints["removed_sha256"],
    }
    if config["unlearn_receipt_ids"]:
        request["ids"] = ids
    directory = protocol.run_dir
    receipt = {
        "model": config["model"],
        "dataset": config["dataset"],
        "split_sha256": protocol.fingerprints["split_sha256"],
        "previous_receipt": _files([previous], directory)[0] if previous else None,
        "request": request,
        "method": method.name,
        "hyperparameters": hyperparameters(config, method.name),
        "tuning": search,
        "started_at": cost.get("started_at"),
        "finished_at": cost.get("finished_at"),
        "original": _files(protocol.start_files or [protocol.files["original"]], directory),
        "retrain": _files([protocol.files["retrain"]], directory),
        "unlearned": _files([protocol.files[name] for name in method.file_names(config)], directory),
        "rebuilt": method.rebuilt_files(protocol),
        "method_fields": method.receipt_fields(protocol),
        "metrics": {metric.name: row[metric.name] for metric in receipt_metrics() if metric.name in row},
        "training_precision": training_precision(config),
        # The resolved precision, not ``auto``: rebuilt on another machine, the models keep their keys.
        "config": json.loads(
            json.dumps({**config.external_config_dict, "enable_amp": config["enable_amp"]}, default=str)
        ),
        "library_versions": library_versions(),
        "code_sha256": code_sha256(),
        "machine": machine(),
    }
    path = receipt_path(directory, method.name)
    os.makedirs(directory, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(receipt, f, indent=2)
    os.replace(path + ".tmp", path)
    return path


def read_receipt(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), os.path.dirname(os.path.abspath(path))
    except (OSError, json.JSONDecodeError) as error:
        raise BadInput(f"Receipt {path} cannot be read: {error}") from error


class RebuiltRun(NamedTuple):
    receipt: dict
    protocol: UnlearnProtocol
    start: object  # the Original, or the model a previous request left
    retrained: object
    unlearned: object


def rebuild(path):
    """The run a receipt describes, rebuilt from its files and its recorded options only (never this
    process's command line). The start model is the Original, or for a sequential request the model
    the previous receipt's run left (rebuilt the same way)."""
    receipt, directory = read_receipt(path)
    before, start = None, None
    if receipt.get("previous_receipt"):
        previous = rebuild(os.path.join(directory, receipt["previous_receipt"]["path"]))
        before, start = previous.protocol, merge_lora(previous.unlearned)
    overrides = {**receipt["config"], "unlearn_method": receipt["method"], "unlearn_after": None, "state": "warning"}
    config = RecordedConfig(model=receipt["model"], dataset=receipt["dataset"], config_dict=overrides)
    protocol = UnlearnProtocol(config, before)
    files = {role: files_of(receipt, role, directory) for role in ("original", "retrain", "unlearned")}
    if start is None:
        start = protocol.load("original", files["original"][0])[0]
    retrained = protocol.load("retrain", files["retrain"][0])[0]
    # As unlearning started: a ranking model's weights on the retained data.
    unlearned = METHODS[receipt["method"]].load(protocol, protocol.on_retained_data(start), files["unlearned"])
    return RebuiltRun(receipt, protocol, start, retrained, unlearned)


def code_comparison(path):
    """One line: whether the code running now is the code that wrote the receipt. ``verify`` re-evaluates with
    the running code, so after a change a metric may differ though every file is the recorded one."""
    recorded, running = read_receipt(path)[0].get("code_sha256"), code_sha256()
    if recorded is None:
        return f"not recorded in the receipt (running {running[:16]})"
    if recorded == running:
        return f"the receipt's ({running[:16]})"
    return (
        f"differs (receipt {recorded[:16]}, running {running[:16]}): a metric that does not match may come from "
        "the code, not from the files"
    )


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
    checks.append(hyperparameter_check(receipt, files_of(receipt, "unlearned", directory)))
    if not checks[-1][1]:
        return checks
    try:
        run = rebuild(path)
    except BadInput as error:  # e.g. options that give other hyper-parameters than the checkpoints'
        return [*checks, ("rebuild", False, str(error))]
    fingerprints = run.protocol.fingerprints
    for key in FINGERPRINTS:
        recorded = receipt[key] if key in receipt else receipt["request"][key]
        checks.append((key, fingerprints[key] == recorded, fingerprints[key][:16]))
    protocol = run.protocol
    rebuilt_fields = METHODS[receipt["method"]].receipt_fields(protocol)
    for key, recorded in receipt.get("method_fields", {}).items():
        checks.append((key, rebuilt_fields.get(key) == recorded, str(rebuilt_fields.get(key))[:16]))
    retrained_outputs = protocol.evaluated_outputs(run.retrained, run.retrained)
    references = (retrained_outputs, protocol.evaluated_outputs(run.start, run.retrained, retrained_outputs))
    outputs = protocol.evaluated_outputs(run.unlearned, run.retrained, retrained_outputs)
    row = protocol.evaluate(receipt["method"], run.unlearned, NO_COST, outputs, *references)
    for key, recorded in receipt["metrics"].items():
        if key not in row:
            checks.append((key, False, "no metric of this name is registered (import the module that registers it)"))
            continue
        # NaN (e.g. AUC of a one-class forget set) matches NaN.
        same = math.isclose(
            row[key], recorded, rel_tol=METRIC_RELATIVE_TOLERANCE, abs_tol=METRIC_ABSOLUTE_TOLERANCE
        ) or (math.isnan(row[key]) and math.isnan(recorded))
        checks.append((key, same, f"{row[key]:.6f} (receipt {recorded:.6f})"))
    return checks


def files_of(receipt, role, directory):
    return [os.path.join(directory, entry["path"]) for entry in receipt[role]]


def hyperparameter_check(receipt, unlearned_files):
    """The receipt's hyper-parameters against those each unlearned checkpoint recorded when it was written
    (where it did: a method's own files, not the cached shards SISA reuses). The rebuilt run then loads
    each checkpoint only under the hyper-parameters the receipt's options give."""
    recorded, differing = receipt["hyperparameters"], {}
    for path in unlearned_files:
        written = read_provenance(path).get("hyperparameters")
        if written is None:
            continue
        keys = sorted(key for key in set(recorded) | set(written) if recorded.get(key) != written.get(key))
        if keys:
            differing[os.path.basename(path)] = keys
    detail = "; ".join(f"{keys} differ from those {name} was written with" for name, keys in differing.items())
    return "hyperparameters", not differing, detail or "as the checkpoints recorded"


def failure_kind(checks):
    """What a failed verification means, from the first kind of check that failed; None if all passed."""
    failed = [name for name, ok, _ in checks if not ok]
    if not failed:
        return None
    if any(" file " in name for name in failed):
        return "a file is missing or is not the file the receipt recorded"
    # A method's own fingerprints (``receipt_fields``, e.g. a partition's) end in _sha256 too.
    if any(name in FINGERPRINTS or name.endswith("_sha256") for name in failed):
        return "the data or the forget request rebuilt from the receipt differ from the recorded ones"
    if "hyperparameters" in failed or "rebuild" in failed:
        return "the hyper-parameters or options the receipt records are not those the checkpoints were written with"
    return (
        "the files match but the re-evaluation differs: the saved models do not give the recorded metrics "
        "(beyond the tolerance of float rounding)"
    )
