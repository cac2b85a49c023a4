"""What several seeds say together: every metric's mean, standard deviation and 95% confidence interval per
method, and claims about methods judged on their per-seed paired differences.

A claim holds when the whole 95% CI of the mean difference lies on its side of the margin, fails when it
lies on the other side, and is inconclusive when the CI contains the margin (or with fewer than two seeds).
NaN values (e.g. an AUC of a one-class group) are left out of a metric's summary and of its seed count.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.metrics import METRICS, table_metrics

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
        summary.append(summarized)
    return summary


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
        """The claim's per-seed differences, their mean and 95% CI half-width and the verdict; None when a
        run lacks one of its methods, or its rows the metric (one of another model family's)."""
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
        low, high = summary["mean"] - summary["ci95"], summary["mean"] + summary["ci95"]
        if math.isnan(low):
            verdict = "inconclusive"
        elif (high < self.margin) if self.better == "lower" else (low > self.margin):
            verdict = "holds"
        elif (low > self.margin) if self.better == "lower" else (high < self.margin):
            verdict = "fails"
        else:
            verdict = "inconclusive"
        return {
            **asdict(self),
            "differences": differences,
            "mean": summary["mean"],
            "ci95": summary["ci95"],
            "seeds": summary["n"],
            "verdict": verdict,
        }


def checked_pair_claims(pairs, known, source):
    """``pair_claims`` of every pair in ``pairs``, each checked to name two of ``known`` (the run's rows);
    ``source`` names where the pairs came from in the error."""
    claims = []
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(name in known for name in pair)):
            raise BadInput(f"{source} entry {pair!r} must be a pair of run rows among {known}.")
        claims += pair_claims(*pair)
    return claims


def pair_claims(method, against):
    """``method`` is better than ``against`` on each headline metric (a comparison column) with a direction."""
    return [
        Claim(f"{method} {metric.better} {metric.label} than {against}", metric.name, method, against, metric.better)
        for metric in table_metrics(compare=True)
        if metric.better
    ]


def judge_claims(claims, runs):
    """The verdicts of the ``claims`` whose methods every run has."""
    return [verdict for verdict in (claim.judge(runs) for claim in claims) if verdict is not None]


def claim_difference(verdict):
    """A verdict's ``mean ± 95% CI`` difference, in its metric's format."""
    metric = METRICS.get(verdict["metric"])
    show = metric.show if metric else "{:.4g}".format
    return f"{show(verdict['mean'])} ± {show(verdict['ci95'])}"


def claims_table(verdicts):
    """The verdicts as a markdown table."""
    lines = ["| claim | mean difference ± 95% CI | seeds | verdict |", "|---|---|---|---|"]
    for verdict in verdicts:
        difference = claim_difference(verdict)
        lines.append(f"| {verdict['text']} | {difference} | {verdict['seeds']} | {verdict['verdict']} |")
    return "\n".join(lines)
