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

from recbole_unlearn.errors import BadInput

# The splits a metric can read ("holdout": membership inference's non-members, never trained on).
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
    pooled_from: str | None = None  # a gap closed's distance: the seed summary adds its ratio of means
    opt_in: str | None = None  # "key" or "key=value" that switches it on (a measurement that costs extra work)

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
    pooled_from=None,
    opt_in=None,
):
    """Declare a metric (idempotent for the same function); columns appear in registration order."""
    unknown = set(needs) - {*SPLITS, *REFERENCES}
    if unknown:
        raise BadInput(f"Metric {name!r} needs unknown data {sorted(unknown)}; choose from {[*SPLITS, *REFERENCES]}.")
    if family not in (None, *FAMILIES):
        raise BadInput(f"Metric {name!r}: family must be one of {list(FAMILIES)} or None, got {family!r}.")
    if better not in (None, "higher", "lower"):
        raise BadInput(f"Metric {name!r}: better must be 'higher', 'lower' or None, got {better!r}.")
    metric = Metric(
        name, compute, tuple(needs), better, receipt, label, fmt, table, compare, family, pooled_from, opt_in
    )
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


def switched_on(metric, config):
    """Whether ``metric`` is computed under ``config``: always, or when its ``opt_in`` key is true (``key``)
    or has a given value (``key=value``)."""
    if not metric.opt_in:
        return True
    key, _, value = metric.opt_in.partition("=")
    return str(config[key]) == value if value else bool(config[key])


def compute_row(name, evaluation):
    """The result row of one evaluated model: every registered metric of its family (an opt-in one only when
    its key is on), then the other RecBole metrics it was evaluated on (``evaluation.extra_columns``)."""
    row = {"method": name}
    row.update(
        {
            metric.name: metric.compute(evaluation)
            for metric in METRICS.values()
            if metric.family in (None, evaluation.family) and switched_on(metric, evaluation.config)
        }
    )
    row.update({key: value for key, value in evaluation.extra_columns().items() if key not in row})
    return row
