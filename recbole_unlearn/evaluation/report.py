"""Result table (console/markdown, CSV, JSON) and the forgetting/utility trade-off plot."""

import csv
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TABLE_COLUMNS = {
    "method": "method",
    "test_auc": "test AUC",
    "test_logloss": "test LogLoss",
    "test_acc": "test ACC",
    "forget_auc": "forget AUC",
    "forget_jsd": "forget JSD",
    "forget_l2": "forget L2",
    "forget_sym_kl": "forget symKL",
    "forget_jsd_yesno": "forget JSD (y/n)",
    "unlearn_seconds": "seconds",
    "trainable_share": "trainable %",
}
REFERENCE_ROWS = ("original", "retrain")


def _cell(key, value):
    if key == "method":
        return value
    if key == "trainable_share":
        return f"{100 * value:.2f}"
    if key == "unlearn_seconds":
        return f"{value:.0f}"
    return f"{value:.4f}"


def markdown_table(rows):
    lines = ["| " + " | ".join(TABLE_COLUMNS.values()) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(_cell(k, row[k]) for k in TABLE_COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def write_results(rows, directory, context):
    """results.csv, results.json (rows plus the run's context) and results.md."""
    with open(os.path.join(directory, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump({"context": context, "results": rows}, f, indent=2)
    with open(os.path.join(directory, "results.md"), "w") as f:
        f.write(markdown_table(rows) + "\n")


def tradeoff_plot(rows, path, title):
    """Forget-set JSD to Retrain (lower = closer to retraining) against test AUC, one point per method."""
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for row in rows:
        reference = row["method"] in REFERENCE_ROWS
        axes.scatter(row["forget_jsd"], row["test_auc"], marker="*" if reference else "o",
                     s=160 if reference else 60, color="black" if reference else None, zorder=3)
        axes.annotate(row["method"], (row["forget_jsd"], row["test_auc"]), textcoords="offset points",
                      xytext=(6, 4), fontsize=9)
    axes.set_xlabel("forget-set JSD to Retrain (full vocabulary)")
    axes.set_ylabel("test AUC")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
