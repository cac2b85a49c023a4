"""Each unlearning method's time against Retrain's on RecBole's ranking models, side by side in one run,
and the cost of scoring a forget query against RecBole's own full-sort evaluation of a test user.

Usage: python bench/ranking_methods.py [--models=BPR,SASRec] [any --key=value config override]

For each model the whole protocol runs on ML-100K with every applicable method, in a fresh output folder
(an empty cache: the Original and Retrain are trained, not loaded). Printed per model: the protocol's
wall time; each method's unlearning seconds and their ratio to Retrain's whole training (and to its
training up to the best epoch, ``seconds_to_best``); and, on the trained Original, the seconds per query
of the forget-query pass against the seconds per user of RecBole's full-sort evaluation of test (both
score the whole catalogue). The first line names the machine.
"""

import argparse
import tempfile
import time

from recbole_unlearn import Config
from recbole_unlearn.evaluation.ranking import forget_query_outputs, full_sort_evaluation, largest_k
from recbole_unlearn.provenance import describe_machine, machine
from recbole_unlearn.quick_start import run_recbole_unlearn
from recbole_unlearn.unlearn.protocol import UnlearnProtocol


def timed(action, *args, **kwargs):
    start = time.perf_counter()
    result = action(*args, **kwargs)
    return result, time.perf_counter() - start


def query_cost(config):
    """(seconds per forget query, seconds per test user of RecBole's full-sort evaluation) on the Original."""
    protocol = UnlearnProtocol(config)
    model, _ = protocol.original()
    model.eval()
    device = next(model.parameters()).device
    sizes = (protocol.test_data._dataset.item_num, config["eval_batch_size"])
    _, query_seconds = timed(forget_query_outputs, model, protocol.queries, largest_k(config), sizes)
    (_, users, _), test_seconds = timed(full_sort_evaluation, config, model, protocol.test_data, device)
    return query_seconds / len(protocol.queries.users), test_seconds / len(users)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="BPR,SASRec")
    args, _ = parser.parse_known_args()
    print(f"Machine: {describe_machine(machine())}")
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as output:
            settings = {"unlearn_output_dir": output, "state": "warning", "show_progress": False}
            (result,), seconds = timed(run_recbole_unlearn, model, "ml-100k", config_dict=settings)
            rows = {row["method"]: row for row in result["rows"]}
            whole, to_best = rows["retrain"]["unlearn_seconds"], rows["retrain"]["seconds_to_best"]
            print(
                f"\n{model}: the whole protocol took {seconds:.0f} s; Retrain {whole:.1f} s "
                f"({to_best:.1f} s to its best epoch)"
            )
            for method, row in rows.items():
                if method not in ("original", "retrain"):
                    spent = row["unlearn_seconds"]
                    print(
                        f"  {method:12s} {spent:8.1f} s  {spent / whole:6.3f}x Retrain ({spent / to_best:.3f}x to best)"
                    )
            config = Config(model, "ml-100k", config_dict=settings)
            per_query, per_user = query_cost(config)
            print(
                f"  forget query {per_query * 1e3:.2f} ms, RecBole's full-sort test user {per_user * 1e3:.2f} ms "
                f"({per_query / per_user:.2f}x)"
            )


if __name__ == "__main__":
    main()
