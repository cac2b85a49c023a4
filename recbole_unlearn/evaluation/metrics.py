"""The metric table: every column of a result row is declared here once, and read from here by the
evaluation, ``results.json``, the tables, the plots and ``verify``.

A metric is a function of an evaluation returning a float, registered with ``register_metric`` (the
built-in ones in ``recbole_unlearn.registry``) for one model family: ``labeled`` models (LLMRec and CTR
models, an ``Evaluation`` of ``recbole_unlearn.evaluation.outputs``), ``ranking`` models (general and
sequential, a ``RankingEvaluation``), or both (``None``: costs). Utility is measured by RecBole's own
evaluator; forgetting on the forget set, by how close the model's answers are to the Retrain model's.
"""

from collections.abc import Callable
from dataclasses import dataclass
from logging import getLogger

import numpy as np
import torch
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.distances import DISTANCES

# The splits a metric can read ("holdout": a seeded sample of the validation split as large as the forget
# set, never trained on).
SPLITS = ("test", "valid", "forget", "holdout")
# Other models' outputs a metric can read: the Retrain model's and the Original's (on the same splits).
REFERENCES = ("retrained", "original")
# Model families a metric can apply to: yes/no answers on labeled interactions, or rankings of the catalogue.
FAMILIES = ("labeled", "ranking")


@dataclass(frozen=True)
class Metric:
    name: str  # the key in result rows, results.json and receipts
    compute: Callable  # Evaluation -> float
    needs: tuple = ("forget",)  # splits it reads, and "retrained"/"original" if it reads those models' too
    better: str | None = None  # "higher", "lower", or None (a cost, or no direction)
    receipt: bool = False  # recorded in receipts and re-checked by verify (deterministic metrics only)
    label: str | None = None  # column header; None = in results files only, no table column
    fmt: str = "{:.4f}"
    table: bool = True  # a column of the per-model table (when it has a label)
    compare: bool = False  # a column of the comparison table across models (when it has a label)
    family: str | None = "labeled"  # the models it applies to: "labeled", "ranking", or None (every model)

    def show(self, value):
        return self.fmt.format(value)


METRICS = {}


def register_metric(
    name,
    compute,
    needs=("forget",),
    better=None,
    receipt=False,
    label=None,
    fmt="{:.4f}",
    table=True,
    compare=False,
    family="labeled",
):
    """Declare a metric (idempotent for the same function); columns appear in registration order."""
    unknown = set(needs) - {*SPLITS, *REFERENCES}
    if unknown:
        raise BadInput(f"Metric {name!r} needs unknown data {sorted(unknown)}; choose from {[*SPLITS, *REFERENCES]}.")
    if family not in (None, *FAMILIES):
        raise BadInput(f"Metric {name!r}: family must be one of {list(FAMILIES)} or None, got {family!r}.")
    if better not in (None, "higher", "lower"):
        raise BadInput(f"Metric {name!r}: better must be 'higher', 'lower' or None, got {better!r}.")
    metric = Metric(name, compute, tuple(needs), better, receipt, label, fmt, table, compare, family)
    registered = METRICS.get(name)
    if registered is not None and _origin(registered.compute) != _origin(compute):
        raise BadInput(f"Metric name {name!r} is taken by {'.'.join(_origin(registered.compute))}.")
    METRICS[name] = metric
    return metric


def _origin(function):
    return function.__module__, function.__qualname__


def needed_splits():
    """The splits a labeled model's metrics read."""
    labeled = [metric for metric in METRICS.values() if metric.family != "ranking"]
    return [split for split in SPLITS if any(split in metric.needs for metric in labeled)]


def table_metrics(compare=False):
    """The columns of the per-model table, or of the comparison across models."""
    return [metric for metric in METRICS.values() if metric.label and (metric.compare if compare else metric.table)]


def receipt_metrics():
    return [metric for metric in METRICS.values() if metric.receipt]


def compute_row(name, evaluation):
    """The result row of one evaluated model: every registered metric of its family, then the other
    RecBole metrics it was evaluated on (``evaluation.extra_columns``)."""
    row = {"method": name}
    row.update(
        {
            metric.name: metric.compute(evaluation)
            for metric in METRICS.values()
            if metric.family in (None, evaluation.family)
        }
    )
    row.update({key: value for key, value in evaluation.extra_columns().items() if key not in row})
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


def mean_yes_no_distance(name, outputs, retrained):
    p = torch.from_numpy(outputs["forget"].yes_no)
    q = torch.from_numpy(retrained["forget"].yes_no)
    return float(DISTANCES[name](p, q).numpy().mean())


def yes_no_distance(name):
    """Mean distance to the Retrain model over the two-way (like, not like) distribution on the forget set."""
    return lambda evaluation: mean_yes_no_distance(name, evaluation.outputs, evaluation.retrained)


def cost(key):
    return lambda evaluation: evaluation.cost[key]


def seconds_to_best(evaluation):
    """A model built by RecBole's training (the Original, Retrain, SISA's retrained shards, summed): its
    training loops' seconds up to the kept (best) epoch, as the official E2URec code counts Retrain's
    time; any other: its whole time (``unlearn_seconds``)."""
    return evaluation.cost.get("seconds_to_best", evaluation.cost["seconds"])


def trainable_parameters(evaluation):
    return evaluation.trainable_parameters


def trainable_share(evaluation):
    return evaluation.trainable_parameters / evaluation.total_parameters


def _true_answer_probability(outputs):
    return np.where(outputs.labels == 1, outputs.like, 1 - outputs.like)


def mia_auc(outputs, seed):
    """Loss attack (open-unlearning's MIA_LOSS) on the forget set (members) against the holdout sample
    (non-members): the AUC of telling them apart by the loss of the true answer, members labelled 0 as
    open-unlearning does, so 1 = the forget data looks trained on, 0.5 = indistinguishable. A forget set
    larger than the holdout is subsampled (seeded) to its size."""
    members, non_members = outputs["forget"], outputs["holdout"]
    member_losses = -np.log(np.clip(_true_answer_probability(members), 1e-15, 1))
    if len(member_losses) > len(non_members.labels):
        member_losses = np.random.default_rng(seed).choice(member_losses, len(non_members.labels), replace=False)
    non_member_losses = -np.log(np.clip(_true_answer_probability(non_members), 1e-15, 1))
    is_non_member = np.r_[np.zeros(len(member_losses)), np.ones(len(non_member_losses))]
    return float(roc_auc_score(is_non_member, np.r_[member_losses, non_member_losses]))


def forget_mia_auc(evaluation):
    return mia_auc(evaluation.outputs, evaluation.config["seed"])


def forget_privleak(evaluation):
    """open-unlearning's privleak: ``((1 - AUC) - (1 - AUC_retrain)) / (1 - AUC_retrain) * 100`` on the MIA
    AUC. 0 = as private as the Retrain model; negative = the forget data looks more trained on than in
    Retrain (too little forgotten); positive = less (too much: itself a signal of unlearning)."""
    retrained = 1 - mia_auc(evaluation.retrained, evaluation.config["seed"])
    if retrained == 0:
        return float("nan")
    return ((1 - forget_mia_auc(evaluation)) - retrained) / retrained * 100


def forget_gap_closed(evaluation):
    """``1 - d(model, Retrain) / d(Original, Retrain)`` for the mean yes/no JSD on the forget set: 1 = reached
    Retrain, 0 = no closer than not unlearning, negative = farther than the Original."""
    gap = mean_yes_no_distance("jsd", evaluation.original, evaluation.retrained)
    if gap == 0:
        getLogger().warning("forget_gap_closed is NaN: the Original and Retrain answer the forget set alike.")
        return float("nan")
    return 1 - mean_yes_no_distance("jsd", evaluation.outputs, evaluation.retrained) / gap


def group_auc(evaluation, active):
    """Test AUC over the active users' samples (``active``) or the others'; NaN, logged, for one class."""
    test = evaluation.outputs["test"]
    chosen = np.isin(test.users, evaluation.active_users) == active
    group = "active" if active else "inactive"
    labels = test.labels[chosen]
    if len(np.unique(labels)) < 2:
        getLogger().warning(f"test_auc_{group} is NaN: the {group} users' test labels hold fewer than two classes.")
        return float("nan")
    return float(roc_auc_score(labels, test.scores[chosen]))


def test_auc_active(evaluation):
    return group_auc(evaluation, active=True)


def test_auc_inactive(evaluation):
    return group_auc(evaluation, active=False)


def fairness_gap(evaluation):
    """CURE4Rec's fairness: test AUC of the active users minus that of the others."""
    return test_auc_active(evaluation) - test_auc_inactive(evaluation)
