"""Entry points in the shape of RecBole's ``run_recbole``: the unlearning protocol, or (with
``unlearn_method: none``) plain training and testing of one or more models on one data configuration.
Library code: it logs and returns results; ``recbole_unlearn.cli`` prints them.
"""

import logging
import os
from logging import getLogger

from recbole.data import create_dataset, data_preparation
from recbole.utils import get_local_time, get_model, init_logger, init_seed

from recbole_unlearn import distributed
from recbole_unlearn.config import Config
from recbole_unlearn.data.fingerprints import split_sha256
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.cost import now
from recbole_unlearn.evaluation.report import write_comparison
from recbole_unlearn.model.ranking import is_ranking
from recbole_unlearn.trainer import safe_trainer_for
from recbole_unlearn.unlearn.experiment import check_supported, run_experiment
from recbole_unlearn.unlearn.seeds import run_seeds

# The root-logger handlers our last ``init_logger`` call installed.
_run_log_handlers = []


def start_run(config):
    """Seed and RecBole's logger for one model run, logging to that run's own file.

    RecBole's ``init_logger`` uses ``logging.basicConfig``, which does nothing once the root logger has
    handlers: without removing the previous run's, every model of a multi-model run would log into the
    first model's file.
    """
    init_seed(config["seed"], config["reproducibility"])
    root = logging.getLogger()
    for handler in _run_log_handlers:
        root.removeHandler(handler)
        handler.close()
    if not distributed.is_main():
        # Ranks other than 0 write no files, logs included; RecBole already set their state to error.
        root.setLevel(logging.ERROR)
        return getLogger()
    before = set(root.handlers)
    init_logger(config)
    _run_log_handlers[:] = [handler for handler in root.handlers if handler not in before]
    logger = getLogger()
    logger.info(config)
    logger.info(f"Dataset files: {config['data_path']}")
    return logger


def train_and_test(model, dataset, config_file_list=None, config_dict=None, saved=True, config=None):
    """Train ``model`` on ``dataset`` and evaluate its best checkpoint on the test split.

    Unlike RecBole's run_recbole this never imports ray and skips ``get_flops`` (which deep-copies
    the model, too costly for an LLM backbone).
    """
    config = config or Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    logger = start_run(config)
    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    recommender = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(recommender)
    trainer = safe_trainer_for(config)(config, recommender)
    trainer.provenance["split_sha256"] = split_sha256(train_data, valid_data, test_data)

    start = now()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    train_seconds = now() - start
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger.info(f"best valid : {best_valid_result}")
    logger.info(f"test result: {test_result}")
    return {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result),
        "train_seconds": train_seconds,
        "trainable_parameters": sum(p.numel() for p in recommender.parameters() if p.requires_grad),
        "checkpoint": trainer.saved_model_file if saved else None,
        "config": config,
    }


def run_recbole_unlearn(
    model="LLMRec",
    dataset="ml-100k",
    config_file_list=None,
    config_dict=None,
    nproc=1,
    world_size=-1,
    ip="localhost",
    port="5678",
    group_offset=0,
):
    """The unlearning protocol for each model of ``model`` (a name, a comma-separated string or a list).

    With several models, each runs on the same split and forget request, and a comparison table and
    plot are written (``comparison_dir`` in each result). With ``unlearn_method: none`` each model is
    only trained and tested (``train_and_test`` results).

    ``nproc`` processes on this machine (``world_size`` in all, over several machines reaching rank 0 at
    ``ip``:``port``; this machine's first rank is ``group_offset``) run it together under DDP, as
    RecBole's ``run`` does; the result of rank 0 is returned (None on other machines).
    """
    if nproc > 1 or world_size > 0:
        return distributed.spawn(
            run_recbole_unlearn,
            nproc,
            world_size,
            ip,
            port,
            group_offset,
            (model, dataset, config_file_list),
            config_dict,
        )
    models = [name.strip() for name in (model.split(",") if isinstance(model, str) else model)]
    configs = [
        Config(model=name, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
        for name in models
    ]
    if configs[0]["unlearn_method"] == "none":
        return [train_and_test(name, dataset, config=config) for name, config in zip(models, configs)]
    # Every model's methods are checked before the first model trains.
    for config in configs:
        check_supported(config)
    ranking = {name for name in models if is_ranking(get_model(name))}
    if ranking and len(ranking) < len(models):
        raise BadInput(
            f"Compare ranking models ({', '.join(sorted(ranking))}) and labeled ones "
            f"({', '.join(name for name in models if name not in ranking)}) in separate runs: their splits, "
            "forget sets and metrics differ."
        )
    results = [unlearn_one(name, dataset, config=config) for name, config in zip(models, configs)]
    if len(results) > 1 and distributed.is_main():
        directory = os.path.join(configs[0]["unlearn_output_dir"], f"comparison-{dataset}-{get_local_time()}")
        getLogger().info("\n" + write_comparison(results, directory))
        for result in results:
            result["comparison_dir"] = directory
    return results


def unlearn_one(model, dataset, config_file_list=None, config_dict=None, config=None):
    """Original -> forget request -> Retrain -> each selected method -> evaluation, for one model
    (``recbole_unlearn.unlearn.experiment``), once or once per seed of ``unlearn_seeds``
    (``recbole_unlearn.unlearn.seeds``: then ``rows`` are the summary over seeds), logged to the model's
    own log file."""
    config = config or Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    if config["unlearn_compare"] and not config["unlearn_seeds"]:
        raise BadInput("unlearn_compare judges claims over seeds: set unlearn_seeds too (e.g. [42, 43, 44]).")
    start_run(config)
    if config["unlearn_seeds"]:
        return run_seeds(config)
    result = run_experiment(config)
    # The results are data (they may cross processes); the unlearned model is in the run folder.
    del result["model"]
    return result
