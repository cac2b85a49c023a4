"""Judge pairs of methods seed by seed on a finished run over seeds, as ``unlearn_compare`` would have
during the run: each headline metric's paired difference, its 95% CI and the verdict.

Usage: python docs/examples/compare_pairs.py saved/unlearn/<run>-seeds-<time>/results.json simnpo,e2urec ...

``--baseline=<other run>/results.json`` adds that run's rows, named ``<method>@baseline``, to the run of
the same seed: ``simnpo,simnpo@baseline`` judges a tuned run's SimNPO against the untuned run's.
"""

import argparse
import json

from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.summary import checked_pair_claims, claims_table, judge_claims


def seed_rows(path):
    with open(path) as f:
        return {run["seed"]: run["rows"] for run in json.load(f)["runs"]}


def with_baseline(runs, baseline_path):
    baseline = seed_rows(baseline_path)
    missing = sorted(set(runs) - set(baseline))
    if missing:
        raise BadInput(f"--baseline={baseline_path} has no run of seed(s) {missing}.")
    return {
        seed: rows + [{**row, "method": f"{row['method']}@baseline"} for row in baseline[seed]]
        for seed, rows in runs.items()
    }


def main(path, pairs, baseline=None):
    runs = seed_rows(path)
    if baseline:
        runs = with_baseline(runs, baseline)
    runs = list(runs.values())
    known = list(dict.fromkeys(row["method"] for rows in runs for row in rows))
    claims = checked_pair_claims([pair.split(",") for pair in pairs], known, "compare_pairs.py")
    print(claims_table(judge_claims(claims, runs)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("pairs", nargs="+", help="method,other pairs, e.g. simnpo,e2urec")
    parser.add_argument(
        "--baseline", help="another run's results.json over the same seeds: its rows as <method>@baseline"
    )
    args = parser.parse_args()
    main(args.results, args.pairs, args.baseline)
