"""A results.md section from a finished run's results.json: what produced it (command, commit, date,
seeds, machine, training precision), the headline columns (gap closed and its signal p-value, test AUC
on all and on retained users, MIA AUC, the fairness gap with its groups' sizes, seconds, trainable share;
for a ranking model NDCG@K, gap closed on top-K lists with its signal p-value and residual exposure in
place of AUC) with each cell as the run's own tables show it (``mean ± 95% CI`` over seeds), and the
claims block of a run over seeds. ``--extra`` adds columns by metric name (e.g. forget_gap_closed_jsd);
``--seeds`` summarises only those seeds of the run (to set it beside another run over them), without claims.

Usage: python docs/examples/headline_columns.py saved/unlearn/<run>/results.json [--command="..."] [--commit=SHA]
       [--extra=forget_gap_closed_jsd,...] [--seeds=42,43,44]
"""

import argparse
import datetime
import json
import os

from recbole_unlearn.evaluation.metrics import METRICS
from recbole_unlearn.evaluation.report import cell, family_of
from recbole_unlearn.evaluation.summary import claims_table, summary_rows
from recbole_unlearn.provenance import describe_machine

COLUMNS = {
    "labeled": (
        "forget_gap_closed",
        "forget_gap_signal_p",
        "test_auc",
        "test_auc_retained",
        "forget_mia_auc",
        "fairness_gap",
        "fairness_active_users",
        "fairness_inactive_users",
        "unlearn_seconds",
        "trainable_share",
    ),
    "ranking": (
        "forget_gap_closed_topk",
        "forget_gap_signal_p_topk",
        "test_ndcg",
        "test_ndcg_retained",
        "forget_exposure",
        "forget_score_mia_auc",
        "fairness_gap_ndcg",
        "fairness_ndcg_active_users",
        "fairness_ndcg_inactive_users",
        "unlearn_seconds",
        "trainable_share",
    ),
}


def provenance(path, document, command, commit, seeds=None):
    """The lines that say what produced the run (``seeds``: the ones summarised, if not all)."""
    context = document["context"]
    runs = document.get("runs", [])
    seeds = seeds or [run["seed"] for run in runs] or [context.get("seed")]
    precision = context.get("training_precision") or (runs and runs[0]["context"].get("training_precision"))
    finished = datetime.date.fromtimestamp(os.path.getmtime(path)).isoformat()
    lines = [f"`{command}`", ""] if command else []
    lines.append(
        f"Commit {commit or 'not given'}, finished {finished}, seed(s) {', '.join(map(str, seeds))}; "
        f"{context['forget_request']}; trained in {precision or 'a precision not recorded'}; "
        f"{describe_machine(context['machine'])}."
    )
    return lines


def table(rows, extra=()):
    # A run made before a metric existed has no column for it.
    recorded = set().union(*rows)
    columns = [name for name in (*COLUMNS[family_of(rows)], *extra) if {name, f"{name}_mean"} & recorded]
    lines = ["| method | " + " | ".join(METRICS[name].label or name for name in columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    lines += [f"| {row['method']} | " + " | ".join(cell(METRICS[name], row) for name in columns) + " |" for row in rows]
    return lines


def main(path, command=None, commit=None, extra=(), seeds=None):
    with open(path) as f:
        document = json.load(f)
    rows = document.get("summary") or document["results"]
    if seeds:
        rows = summary_rows([run["rows"] for run in document["runs"] if run["seed"] in seeds])
    lines = [*provenance(path, document, command, commit, seeds), "", *table(rows, extra)]
    if document.get("claims") and not seeds:
        lines += ["", claims_table(document["claims"])]
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--command", help="the command that produced the run")
    parser.add_argument("--commit", help="the commit it ran at")
    parser.add_argument("--extra", default="", help="more columns: metric names, comma-separated")
    parser.add_argument("--seeds", default="", help="summarise only these seeds of the run, comma-separated")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    main(args.results, args.command, args.commit, [name for name in args.extra.split(",") if name], seeds)
