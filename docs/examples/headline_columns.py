"""The headline columns of one run over seeds (gap closed, test AUC, MIA AUC, forget JSD (y/n), seconds,
trainable share) as a markdown table, each cell ``mean ± 95% CI`` in the metric's own format.

Usage: python docs/examples/headline_columns.py saved/unlearn/<model>-<dataset>-seeds-<time>/results.json
"""

import json
import sys

from recbole_unlearn.evaluation.metrics import METRICS

COLUMNS = ("forget_gap_closed", "test_auc", "forget_mia_auc", "forget_jsd_yesno", "unlearn_seconds", "trainable_share")


def main(path):
    with open(path) as f:
        summary = json.load(f)["summary"]
    print("| method | " + " | ".join(METRICS[name].label for name in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for row in summary:
        cells = [
            f"{METRICS[name].show(row[f'{name}_mean'])} ± {METRICS[name].show(row[f'{name}_ci95'])}" for name in COLUMNS
        ]
        print(f"| {row['method']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
