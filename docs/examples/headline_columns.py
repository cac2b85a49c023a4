"""The headline columns of one run over seeds (gap closed, test AUC, MIA AUC, forget JSD (y/n), seconds,
trainable share) as a markdown table, each cell as the run's own tables show it (``mean ± 95% CI``).

Usage: python docs/examples/headline_columns.py saved/unlearn/<model>-<dataset>-seeds-<time>/results.json
"""

import json
import sys

from recbole_unlearn.evaluation.metrics import METRICS
from recbole_unlearn.evaluation.report import cell

COLUMNS = ("forget_gap_closed", "test_auc", "forget_mia_auc", "forget_jsd_yesno", "unlearn_seconds", "trainable_share")


def main(path):
    with open(path) as f:
        summary = json.load(f)["summary"]
    print("| method | " + " | ".join(METRICS[name].label for name in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for row in summary:
        print(f"| {row['method']} | " + " | ".join(cell(METRICS[name], row) for name in COLUMNS) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
