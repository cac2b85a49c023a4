"""The whole experiment once per seed of ``unlearn_seeds`` (the Original's initialisation and batch order,
the forget draw, the Retrain model and every method; each seed's models cached as usual), then what the
seeds say together: a summary per method and metric (mean, std, 95% CI), the claims of the selected
methods' papers and of ``unlearn_compare``'s pairs, a table and a plot with error bars."""

import hashlib
import os
from logging import getLogger

from recbole.utils import get_local_time

from recbole_unlearn import distributed
from recbole_unlearn.config import config_with
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.report import markdown_table, signal_lines, tradeoff_plot, write_seed_results
from recbole_unlearn.evaluation.summary import (
    checked_pair_claims,
    claims_table,
    judge_claims,
    primary_metrics,
    signal_check,
    summary_rows,
)
from recbole_unlearn.unlearn.experiment import run_experiment
from recbole_unlearn.unlearn.method import get_unlearn_methods

# Rows every run has besides the methods', which a claim may name (seeds exclude sequential requests, so
# there is no "previous" row).
REFERENCE_NAMES = ("original", "retrain")


def checked_seeds(config):
    """``unlearn_seeds`` as a list of distinct integers (ValueError naming the key otherwise)."""
    seeds = config["unlearn_seeds"]
    if not isinstance(seeds, (list, tuple)) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise BadInput(f"unlearn_seeds must be a non-empty list of integers, e.g. [42, 43, 44]; got {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise BadInput(f"unlearn_seeds lists a seed more than once: {seeds}.")
    if config["unlearn_after"]:
        raise BadInput("unlearn_seeds cannot be combined with unlearn_after: a receipt continues one seed's run.")
    return list(seeds)


def requested_claims(config):
    """The claims of the selected methods and of the pairs ``unlearn_compare`` names (checked)."""
    methods = get_unlearn_methods(config["unlearn_method"])
    claims = [claim for method in methods for claim in method.claims]
    known = [*REFERENCE_NAMES, *(method.name for method in methods)]
    primary = primary_metrics(config["unlearn_primary_metric"])
    return claims + checked_pair_claims(config["unlearn_compare"] or [], known, "unlearn_compare", primary)


def seeded(config, seed):
    """``config`` with another seed, also in the options receipts record (so ``verify`` rebuilds that seed)."""
    changed = config_with(config, seed=seed)
    changed.external_config_dict = {**config.external_config_dict, "seed": seed}
    return changed


def _combined(contexts, key):
    return hashlib.sha256("\n".join(context[key] for context in contexts).encode()).hexdigest()


def run_seeds(config):
    """The experiment once per seed; ``rows`` (the summary rows), ``runs``, ``claims``, ``run_dir`` (the
    folder of the summary) and ``context``."""
    seeds = checked_seeds(config)
    claims = requested_claims(config)
    logger = getLogger()
    runs = []
    for index, seed in enumerate(seeds, 1):
        logger.info(f"Seed {seed} ({index} of {len(seeds)})")
        result = run_experiment(seeded(config, seed))
        context = {**result["context"], "run_dir": result["run_dir"]}
        runs.append({"seed": seed, "context": context, "rows": result["rows"]})
    summary = summary_rows([run["rows"] for run in runs])
    verdicts = judge_claims(claims, [run["rows"] for run in runs])
    contexts = [run["context"] for run in runs]
    request = contexts[0]["forget_request"].rsplit(", seed ", 1)[0]
    context = {
        "model": config["model"],
        "dataset": config["dataset"],
        "forget_request": f"{request}, seeds {seeds}",
        "seed": seeds,
        **{key: [c[key] for c in contexts] for key in ("forget_interactions", "retain_interactions", "run_dir")},
        "split_sha256": _combined(contexts, "split_sha256"),
        "forget_sha256": _combined(contexts, "forget_sha256"),
        "training_precision": contexts[0]["training_precision"],
        "machine": contexts[0]["machine"],
    }
    run_dir = distributed.broadcast_object(
        os.path.join(config["unlearn_output_dir"], f"{config['model']}-{config['dataset']}-seeds-{get_local_time()}")
    )
    if distributed.is_main():
        write_seed_results(summary, runs, verdicts, run_dir, context)
        title = f"{config['model']} on {config['dataset']}: {len(seeds)} seeds, mean ± 95% CI"
        tradeoff_plot(summary, os.path.join(run_dir, "tradeoff.png"), title)
        signal = signal_lines(signal_check([run["rows"] for run in runs]))
        logger.info("\n" + markdown_table(summary) + "\n" + signal + "\n" + claims_table(verdicts))
    return {"rows": summary, "runs": runs, "claims": verdicts, "run_dir": run_dir, "context": context}
