"""The metric table: every column of a result row is declared here once, and read from here by the
evaluation, ``results.json``, the tables, the plots and ``verify``.

A metric is a function of an ``Evaluation`` (``recbole_unlearn.evaluation.outputs``) returning a float,
registered with ``register_metric`` (the built-in ones in ``recbole_unlearn.registry``). Utility is
measured on test by RecBole's own evaluator; forgetting on the forget set, by how close the model's
answer distribution is to the Retrain model's, per sample, averaged (see ``distances``).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from recbole_unlearn.evaluation.distances import DISTANCES

# The splits a metric can read; a metric that reads the Retrain model's outputs also needs "retrained".
SPLITS = ("test", "valid", "forget")


@dataclass(frozen=True)
class Metric:
    name: str  # the key in result rows, results.json and receipts
    compute: Callable  # Evaluation -> float
    needs: tuple = ("forget",)  # splits it reads, and "retrained" if it reads the Retrain model's
    better: str | None = None  # "higher", "lower", or None (a cost, or no direction)
    receipt: bool = False  # recorded in receipts and re-checked by verify (deterministic metrics only)
    label: str | None = None  # column header; None = in results files only, no table column
    fmt: str = "{:.4f}"
    table: bool = True  # a column of the per-model table (when it has a label)
    compare: bool = False  # a column of the comparison table across models (when it has a label)

    def show(self, value):
        return self.fmt.format(value)


METRICS = {}


def register_metric(
    name, compute, needs=("forget",), better=None, receipt=False, label=None, fmt="{:.4f}", table=True, compare=False
):
    """Declare a metric (idempotent for the same function); columns appear in registration order."""
    unknown = set(needs) - {*SPLITS, "retrained"}
    if unknown:
        raise ValueError(f"Metric {name!r} needs unknown data {sorted(unknown)}; choose from {[*SPLITS, 'retrained']}.")
    if better not in (None, "higher", "lower"):
        raise ValueError(f"Metric {name!r}: better must be 'higher', 'lower' or None, got {better!r}.")
    metric = Metric(name, compute, tuple(needs), better, receipt, label, fmt, table, compare)
    registered = METRICS.get(name)
    if registered is not None and _origin(registered.compute) != _origin(compute):
        raise ValueError(f"Metric name {name!r} is taken by {'.'.join(_origin(registered.compute))}.")
    METRICS[name] = metric
    return metric


def _origin(function):
    return function.__module__, function.__qualname__


def needed_splits():
    return [split for split in SPLITS if any(split in metric.needs for metric in METRICS.values())]


def table_metrics(compare=False):
    """The columns of the per-model table, or of the comparison across models."""
    return [metric for metric in METRICS.values() if metric.label and (metric.compare if compare else metric.table)]


def receipt_metrics():
    return [metric for metric in METRICS.values() if metric.receipt]


def compute_row(name, evaluation):
    """The result row of one evaluated model: every registered metric, then any other RecBole test metric
    the user's ``metrics`` asked for."""
    row = {"method": name}
    row.update({metric.name: metric.compute(evaluation) for metric in METRICS.values()})
    if "test" in evaluation.outputs:
        row.update(
            {
                f"test_{key}": float(value)
                for key, value in evaluation.recbole("test").items()
                if f"test_{key}" not in row
            }
        )
    return row


# Built-in metric functions (registered in recbole_unlearn.registry).


def recbole_metric(split, key):
    """A metric RecBole's evaluator computes on ``split`` (e.g. ``recbole_metric("test", "auc")``)."""
    return lambda evaluation: float(evaluation.recbole(split)[key])


def forget_auc(evaluation):
    forget = evaluation.outputs["forget"]
    return roc_auc_score(forget.labels, forget.like)


def forget_acc(evaluation):
    forget = evaluation.outputs["forget"]
    return accuracy_score(forget.labels, forget.like >= 0.5)


def forget_logloss(evaluation):
    forget = evaluation.outputs["forget"]
    return log_loss(forget.labels, np.clip(forget.like, 1e-15, 1 - 1e-15), labels=[0, 1])


def forget_gold_confidence(evaluation):
    """Mean probability of the true answer on the forget set."""
    forget = evaluation.outputs["forget"]
    return float(np.mean(np.where(forget.labels == 1, forget.like, 1 - forget.like)))


def vocabulary_distance(name):
    """Mean distance to the Retrain model over the full answer distribution on the forget set."""
    return lambda evaluation: float(evaluation.outputs["forget"].vocab_distances[name].mean())


def yes_no_distance(name):
    """Mean distance to the Retrain model over the two-way (like, not like) distribution on the forget set."""

    def compute(evaluation):
        p = torch.from_numpy(evaluation.outputs["forget"].yes_no)
        q = torch.from_numpy(evaluation.retrained["forget"].yes_no)
        return float(DISTANCES[name](p, q).numpy().mean())

    return compute


def cost(key):
    return lambda evaluation: evaluation.cost[key]


def trainable_parameters(evaluation):
    return evaluation.trainable_parameters


def trainable_share(evaluation):
    return evaluation.trainable_parameters / evaluation.total_parameters
