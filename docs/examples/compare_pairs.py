"""Judge pairs of methods seed by seed on a finished run over seeds, as ``unlearn_compare`` would have
during the run: each headline metric's paired difference, its 95% CI and the verdict.

Usage: python docs/examples/compare_pairs.py saved/unlearn/<run>-seeds-<time>/results.json simnpo,e2urec ...
"""

import json
import sys

from recbole_unlearn.evaluation.summary import checked_pair_claims, claims_table, judge_claims


def main(path, pairs):
    with open(path) as f:
        runs = [run["rows"] for run in json.load(f)["runs"]]
    known = list(dict.fromkeys(row["method"] for rows in runs for row in rows))
    claims = checked_pair_claims([pair.split(",") for pair in pairs], known, "compare_pairs.py")
    print(claims_table(judge_claims(claims, runs)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
