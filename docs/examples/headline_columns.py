"""A results.md section from a finished run's results.json: what produced it (command, commit, date,
seeds, machine, training precision), the headline columns (gap closed, test AUC, MIA AUC, forget JSD
(y/n), seconds, trainable share; for a ranking model test NDCG@K, gap closed on top-K lists, residual
exposure and score MIA AUC in place of the first four) with each cell as the run's own tables show it
(``mean ± 95% CI`` over seeds), and the claims block of a run over seeds.

Usage: python docs/examples/headline_columns.py saved/unlearn/<run>/results.json [--command="..."] [--commit=SHA]
"""

import argparse
import datetime
import json
import os

from recbole_unlearn.evaluation.metrics import METRICS
from recbole_unlearn.evaluation.report import cell, family_of
from recbole_unlearn.evaluation.summary import claims_table
from recbole_unlearn.provenance import describe_machine

COLUMNS = {
    "labeled": (
        "forget_gap_closed",
        "test_auc",
        "forget_mia_auc",
        "forget_jsd_yesno",
        "unlearn_seconds",
        "trainable_share",
    ),
    "ranking": (
        "forget_gap_closed_topk",
        "test_ndcg",
        "forget_exposure",
        "forget_score_mia_auc",
        "unlearn_seconds",
        "trainable_share",
    ),
}


def provenance(path, document, command, commit):
    """The lines that say what produced the run."""
    context = document["context"]
    runs = document.get("runs", [])
    seeds = [run["seed"] for run in runs] or [context.get("seed")]
    precision = context.get("training_precision") or (runs and runs[0]["context"].get("training_precision"))
    finished = datetime.date.fromtimestamp(os.path.getmtime(path)).isoformat()
    lines = [f"`{command}`", ""] if command else []
    lines.append(
        f"Commit {commit or 'not given'}, finished {finished}, seed(s) {', '.join(map(str, seeds))}; "
        f"{context['forget_request']}; trained in {precision or 'a precision not recorded'}; "
        f"{describe_machine(context['machine'])}."
    )
    return lines


def table(rows):
    columns = COLUMNS[family_of(rows)]
    lines = ["| method | " + " | ".join(METRICS[name].label for name in columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    lines += [f"| {row['method']} | " + " | ".join(cell(METRICS[name], row) for name in columns) + " |" for row in rows]
    return lines


def main(path, command=None, commit=None):
    with open(path) as f:
        document = json.load(f)
    lines = [*provenance(path, document, command, commit), "", *table(document.get("summary") or document["results"])]
    if document.get("claims"):
        lines += ["", claims_table(document["claims"])]
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--command", help="the command that produced the run")
    parser.add_argument("--commit", help="the commit it ran at")
    args = parser.parse_args()
    main(args.results, args.command, args.commit)
