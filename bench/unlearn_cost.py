"""Cost of each unlearning method relative to Retrain, from one run of the protocol.

Usage:
  python bench/unlearn_cost.py                       # runs the protocol (all methods, default config)
  python bench/unlearn_cost.py --results=RUN/results.json   # reads a finished run instead
Any other --key=value is a RecBole/recbole-unlearn config override, as for run_recbole_unlearn.py.
"""

import argparse
import json

from recbole_unlearn.quick_start import unlearn_one


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default=None, help="results.json of a finished run")
    parser.add_argument("--model", default="LLMRec")
    parser.add_argument("--dataset", default="ml-100k")
    args, _ = parser.parse_known_args()
    if args.results:
        with open(args.results) as f:
            rows = json.load(f)["results"]
    else:
        rows = unlearn_one(args.model, args.dataset, config_dict={"unlearn_method": "all"})["rows"]
    retrain_seconds = next(row["unlearn_seconds"] for row in rows if row["method"] == "retrain")
    print(
        f"{'method':<12} {'seconds':>8} {'x Retrain':>10} {'trainable params':>17} {'share %':>8} {'peak RSS MiB':>13}"
    )
    for row in rows:
        if row["method"] == "original":
            continue
        print(
            f"{row['method']:<12} {row['unlearn_seconds']:>8.1f} {row['unlearn_seconds'] / retrain_seconds:>10.3f} "
            f"{row['trainable_parameters']:>17,} {100 * row['trainable_share']:>8.2f} {row['peak_rss_mib']:>13.0f}"
        )


if __name__ == "__main__":
    main()
