"""One table row per finished run over seeds, for comparing requests by what they leave to forget: the
forget interactions per seed, the signal check (seeds with a signal, and each seed's p-value), and the
Original's and Retrain's test AUC, forget AUC and MIA AUC (``mean ± 95% CI``), the Original's distance to
Retrain on the forget set and both models' seconds. A run with ``--unlearn_method=retrain`` is enough.

Usage: python docs/examples/signal_rows.py "<label>=saved/unlearn/<run>-seeds-<time>/results.json" ...
"""

import json
import sys

from recbole_unlearn.evaluation.metrics import METRICS
from recbole_unlearn.evaluation.report import cell

HEADER = (
    "| setting | forget ratings | signal (p per seed) | test AUC: Original / Retrain | forget AUC: Original / Retrain "
    "| MIA AUC: Original / Retrain | forget L2 (y/n), Original to Retrain | seconds: Original / Retrain |"
)


def row(label, path):
    with open(path) as f:
        document = json.load(f)
    models = {summary["method"]: summary for summary in document["summary"]}
    original, retrain = models["original"], models["retrain"]
    signal = document["signal"]

    def both(name):
        return f"{cell(METRICS[name], original)} / {cell(METRICS[name], retrain)}"

    forget = " / ".join(f"{run['context']['forget_interactions']:,}" for run in document["runs"])
    p_values = ", ".join(f"{p:.2g}" for p in signal["p"])
    distance = cell(METRICS["forget_l2_yesno"], original)
    seconds = f"{original['unlearn_seconds_mean']:.0f} / {retrain['unlearn_seconds_mean']:.0f}"
    return (
        f"| {label} | {forget} | {signal['with_signal']} of {signal['seeds']} ({p_values}) | {both('test_auc')} "
        f"| {both('forget_auc')} | {both('forget_mia_auc')} | {distance} | {seconds} |"
    )


def main(arguments):
    print(HEADER)
    print("|---" * HEADER.count(" | ") + "|---|")
    for argument in arguments:
        label, _, path = argument.rpartition("=")
        print(row(label, path))


if __name__ == "__main__":
    main(sys.argv[1:])
