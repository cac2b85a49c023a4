"""Exact unlearning's cost against Retrain's as the request grows, side by side in one run.

Usage: python bench/exact_cost.py [--models=DeepFM,BPR] [--methods=sisa] [--sizes=1,10,100,0.2]
       [any --key=value config override]

A size is a number of forgotten users, or a share of them. Each model runs in one fresh output folder,
so its Original and the shard models trained before any request are trained once (not counted, as in
any run); each size then trains its own Retrain, and each exact method retrains what the request
touches. Printed per model and size: Retrain's seconds, each method's unlearning seconds, their ratio,
and the models it trained (SISA: the shards holding a forgotten user). The first line names the machine.
LLMRec belongs in --models on a machine that trains it quickly (or with bench/cpu_window.yaml).
"""

import argparse
import tempfile

from recbole_unlearn.provenance import describe_machine, machine
from recbole_unlearn.quick_start import run_recbole_unlearn


def size(text):
    """A whole number of users (``10``), or a share of them (``0.2``): ``forget_ratio``'s two forms."""
    return float(text) if "." in text else int(text)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="DeepFM,BPR")
    parser.add_argument("--methods", default="sisa")
    parser.add_argument("--sizes", default="1,10,100,0.2")
    args, _ = parser.parse_known_args()
    print(f"Machine: {describe_machine(machine())}")
    methods = args.methods.split(",")
    for model in args.models.split(","):
        print(
            f"\n{model}: {'forgotten':>9} {'Retrain s':>10} "
            + " ".join(f"{m + ' s':>10} {'x':>6} {'models':>6}" for m in methods)
        )
        with tempfile.TemporaryDirectory() as output:
            for forget_ratio in map(size, args.sizes.split(",")):
                settings = {
                    "unlearn_output_dir": output,
                    "unlearn_method": ",".join(["retrain", *methods]),
                    "forget_ratio": forget_ratio,
                    "state": "warning",
                    "show_progress": False,
                }
                (result,) = run_recbole_unlearn(model, "ml-100k", config_dict=settings)
                rows = {row["method"]: row for row in result["rows"]}
                retrain = rows["retrain"]["unlearn_seconds"]
                cells = " ".join(
                    f"{rows[m]['unlearn_seconds']:>10.1f} {rows[m]['unlearn_seconds'] / retrain:>6.2f} "
                    f"{rows[m]['models_trained']:>6.0f}"
                    for m in methods
                )
                print(f"{'':{len(model) + 1}} {forget_ratio:>9} {retrain:>10.1f} {cells}")


if __name__ == "__main__":
    main()
