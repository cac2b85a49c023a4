"""One markdown table of the claims blocks of several runs over seeds: a row per claim, a column per model
(and forget selection, when it is core or edge).

Usage: python docs/examples/claims_by_model.py saved/unlearn/*-seeds-*/results.json
"""

import json
import sys

from recbole_unlearn.evaluation.summary import claim_difference


def main(paths):
    verdicts = {}
    for path in paths:
        with open(path) as f:
            results = json.load(f)
        context = results["context"]
        column = context["model"]
        for selection in ("core", "edge"):
            if f"of {selection} users" in context["forget_request"]:
                column += f" ({selection})"
        for claim in results["claims"]:
            verdicts.setdefault(claim["text"], {})[column] = f"{claim['verdict']} ({claim_difference(claim)})"
    models = list(dict.fromkeys(model for row in verdicts.values() for model in row))
    print("| claim | " + " | ".join(models) + " |")
    print("|---|" + "---|" * len(models))
    for text, row in verdicts.items():
        print(f"| {text} | " + " | ".join(row.get(model, "") for model in models) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
