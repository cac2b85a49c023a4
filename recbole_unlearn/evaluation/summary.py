"""What several seeds say together: every metric's mean, standard deviation and 95% confidence interval per
method, and claims about methods judged on their per-seed paired differences.

A claim holds when the whole 95% CI of the mean difference lies on its side of the margin, fails when it
lies on the other side, and is inconclusive when the CI contains the margin (or with fewer than two seeds).
Claims judged together are corrected for their number with Holm's method: each holds or fails only when
its Holm-adjusted p-value (of the t-test behind that CI) is below 0.05.
NaN values (e.g. an AUC of a one-class group) are left out of a metric's summary and of its seed count.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.labeled_metrics import SIGNIFICANCE
from recbole_unlearn.evaluation.metrics import METRICS

CONFIDENCE = 0.95


def summarize(values):
    """Mean, standard deviation (ddof 1), the half-width of the Student-t 95% CI of the mean and ``n``, the
    number of finite values they are taken over."""
    finite = np.asarray([value for value in values if not math.isnan(value)], dtype=float)
    count = len(finite)
    mean = float(finite.mean()) if count else math.nan
    if count < 2:
        return {"mean": mean, "std": math.nan, "ci95": math.nan, "n": count}
    std = float(finite.std(ddof=1))
    half_width = float(stats.t.ppf((1 + CONFIDENCE) / 2, count - 1) * std / math.sqrt(count))
    return {"mean": mean, "std": std, "ci95": half_width, "n": count}


def _numeric(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summary_rows(runs):
    """One row per method over ``runs`` (each a list of result rows, one run per seed): ``seeds`` (the runs
    with the method) and, for every numeric key, ``<key>_mean``, ``<key>_std``, ``<key>_ci95`` and
    ``<key>_n`` (the seeds with a finite value)."""
    methods = dict.fromkeys(row["method"] for rows in runs for row in rows)
    summary = []
    for method in methods:
        rows = [row for rows in runs for row in rows if row["method"] == method]
        keys = dict.fromkeys(key for row in rows for key, value in row.items() if _numeric(value))
        summarized = {"method": method, "seeds": len(rows)}
        for key in keys:
            for name, value in summarize([float(row.get(key, math.nan)) for row in rows]).items():
                summarized[f"{key}_{name}"] = value
        summarized.update(pooled_gaps(runs, method))
        summary.append(summarized)
    return summary


def pooled_gaps(runs, method, reference="original"):
    """``<gap>_pooled`` for every gap closed with a ``pooled_from`` distance: ``1 - sum d(method, Retrain) /
    sum d(reference, Retrain)`` over the seeds where the method's gap closed is finite (the ratio of means,
    next to the summary's mean of per-seed ratios, which seeds with a small gap dominate)."""
    pooled = {}
    for metric in (metric for metric in METRICS.values() if metric.pooled_from):
        pairs = []
        for rows in runs:
            by_method = {row["method"]: row for row in rows}
            row, base = by_method.get(method, {}), by_method.get(reference, {})
            if math.isfinite(row.get(metric.name, math.nan)) and metric.pooled_from in base:
                pairs.append((row[metric.pooled_from], base[metric.pooled_from]))
        if pairs:
            distances, gaps = np.asarray(pairs).sum(axis=0)
            pooled[f"{metric.name}_pooled"] = float(1 - distances / gaps)
    return pooled


@dataclass(frozen=True)
class Claim:
    """``method``'s ``metric`` minus ``against``'s (without ``against``: the value itself) is ``better``
    ("lower" or "higher") than ``margin``."""

    text: str
    metric: str
    method: str
    against: str | None = None
    better: str = "lower"
    margin: float = 0.0

    def judge(self, runs):
        """The claim's per-seed differences, their mean, 95% CI half-width, the two-sided t-test p-value of
        the mean against the margin, and the verdict on its own (``judge_claims`` corrects verdicts judged
        together); None when a run lacks one of its methods, or its rows the metric (one of another model
        family's)."""
        differences = []
        for rows in runs:
            by_method = {row["method"]: row for row in rows}
            if self.method not in by_method or (self.against and self.against not in by_method):
                return None
            if self.metric not in by_method[self.method]:
                return None
            value = by_method[self.method][self.metric]
            differences.append(value - by_method[self.against][self.metric] if self.against else value)
        summary = summarize(differences)
        p_value = t_test_p(summary, self.margin)
        return {
            **asdict(self),
            "differences": differences,
            "mean": summary["mean"],
            "ci95": summary["ci95"],
            "seeds": summary["n"],
            "p": p_value,
            "p_holm": p_value,  # judged alone; ``judge_claims`` corrects claims judged together
            "verdict": self.verdict(summary["mean"], p_value),
        }

    def verdict(self, mean, p_value):
        """``holds`` or ``fails`` when ``p_value`` is below 1 - CONFIDENCE (the 95% CI excludes the margin),
        by the side of the margin the mean is on; else ``inconclusive``."""
        if not p_value < 1 - CONFIDENCE:
            return "inconclusive"
        return "holds" if (mean < self.margin) == (self.better == "lower") else "fails"


def t_test_p(summary, margin):
    """Two-sided one-sample t-test p-value of a ``summarize`` result's mean against ``margin``; NaN with
    fewer than two values; 0 or 1 when the values do not vary."""
    if summary["n"] < 2:
        return math.nan
    if summary["std"] == 0:
        return 0.0 if summary["mean"] != margin else 1.0
    t = (summary["mean"] - margin) / (summary["std"] / math.sqrt(summary["n"]))
    return float(2 * stats.t.sf(abs(t), summary["n"] - 1))


def checked_pair_claims(pairs, known, source, metrics=None):
    """``pair_claims`` on ``metrics`` (default ``PRIMARY_METRICS``) of every pair in ``pairs``, each checked
    to name two of ``known`` (the run's rows); ``source`` names where the pairs came from in the error."""
    claims = []
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(name in known for name in pair)):
            raise BadInput(f"{source} entry {pair!r} must be a pair of run rows among {known}.")
        claims += pair_claims(*pair, metrics or PRIMARY_METRICS)
    return claims


# What ``unlearn_compare`` judges by default: gap closed (each run's rows hold one of the two).
PRIMARY_METRICS = ("forget_gap_closed", "forget_gap_closed_topk")


def primary_metrics(name=None):
    """The metric ``unlearn_primary_metric`` names (checked), or by default ``PRIMARY_METRICS``."""
    if name is None:
        return PRIMARY_METRICS
    metric = METRICS.get(name)
    if metric is None or metric.better is None:
        directed = [key for key, known in METRICS.items() if known.better]
        raise BadInput(f"unlearn_primary_metric must name a metric with a direction, one of {directed}; got {name!r}.")
    return (name,)


def pair_claims(method, against, metrics=PRIMARY_METRICS):
    """``method`` is better than ``against`` on each of ``metrics`` (a run's rows hold those of one family)."""
    return [
        Claim(
            f"{method} {METRICS[name].better} {METRICS[name].label or name} than {against}",
            name,
            method,
            against,
            METRICS[name].better,
        )
        for name in metrics
    ]


def judge_claims(claims, runs):
    """The verdicts of the ``claims`` whose methods every run has, corrected together with Holm's method
    (``p_holm``): a verdict holds or fails only when its Holm-adjusted p-value is below 1 - CONFIDENCE."""
    judged = [(claim, verdict) for claim, verdict in ((claim, claim.judge(runs)) for claim in claims) if verdict]
    tested = [(claim, verdict) for claim, verdict in judged if not math.isnan(verdict["p"])]
    adjusted = multipletests([verdict["p"] for _, verdict in tested], method="holm")[1] if tested else []
    for (claim, verdict), p_holm in zip(tested, adjusted):
        verdict["p_holm"] = float(p_holm)
        verdict["verdict"] = claim.verdict(verdict["mean"], p_holm)
    return [verdict for _, verdict in judged]


def signal_check(runs):
    """Whether the Original differs from Retrain on the forget set at all, per seed (``runs``: each a list of
    result rows): the seeds whose ``forget_gap_signal_p`` (a ranking model's ``forget_gap_signal_p_topk``)
    is below ``SIGNIFICANCE``; None for rows without it, or where it could not be computed (NaN)."""
    originals = [row for rows in runs for row in rows if row["method"] == "original"]
    p_values = [row.get("forget_gap_signal_p", row.get("forget_gap_signal_p_topk")) for row in originals]
    p_values = [p for p in p_values if p is not None and not math.isnan(p)]
    if not p_values:
        return None
    return {"seeds": len(p_values), "with_signal": sum(p < SIGNIFICANCE for p in p_values), "p": p_values}


def signal_sentence(check):
    """The signal check in words, for the line under a results table."""
    seeds, found = check["seeds"], check["with_signal"]
    where = f"{found} of {seeds} seed{'s' if seeds > 1 else ''}"
    if found == seeds:
        return (
            f"Forgetting signal on {where}: the Original is farther from Retrain on the forget set than on "
            f"held-out data (signal p < {SIGNIFICANCE})."
        )
    if found == 0:
        return (
            f"No measurable forgetting signal on any of {seeds} seed(s) (signal p >= {SIGNIFICANCE}): the "
            "Original is no farther from Retrain on the forget set than on held-out data, so gap closed is NaN "
            "and ranks nothing; this request leaves nothing measurable to forget."
        )
    return (
        f"Forgetting signal on {where} only: gap closed is NaN on the others and its summary leaves them out "
        f"(signal p >= {SIGNIFICANCE})."
    )


def claim_difference(verdict):
    """A verdict's ``mean ± 95% CI`` difference, in its metric's format."""
    metric = METRICS.get(verdict["metric"])
    show = metric.show if metric else "{:.4g}".format
    return f"{show(verdict['mean'])} ± {show(verdict['ci95'])}"


def claims_table(verdicts):
    """The verdicts as a markdown table."""
    lines = ["| claim | mean difference ± 95% CI | seeds | p (Holm) | verdict |", "|---|---|---|---|---|"]
    for verdict in verdicts:
        difference, p_holm = claim_difference(verdict), f"{verdict['p_holm']:.3g}"
        lines.append(f"| {verdict['text']} | {difference} | {verdict['seeds']} | {p_holm} | {verdict['verdict']} |")
    return "\n".join(lines)
