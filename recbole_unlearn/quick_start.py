"""Entry points in the shape of RecBole's ``run_recbole``: the unlearning protocol, or (with
``unlearn_method: none``) plain training and testing of one or more models on one data configuration.
"""

import argparse
import logging
import os
import sys
import time
from logging import getLogger

from recbole.data import create_dataset, data_preparation
from recbole.utils import get_local_time, get_model, init_logger, init_seed

from recbole_unlearn import distributed
from recbole_unlearn.compat import safe_trainer_for
from recbole_unlearn.config import Config
from recbole_unlearn.evaluation.report import markdown_table, tradeoff_plot, write_comparison, write_results
from recbole_unlearn.model.lora import merge_lora
from recbole_unlearn.registry import get_unlearn_methods
from recbole_unlearn.unlearn.methods.retrain import Retrain
from recbole_unlearn.unlearn.methods.sisa import SISA
from recbole_unlearn.unlearn.protocol import UnlearnProtocol, split_sha256
from recbole_unlearn.unlearn.receipt import rebuild, verify_main, write_receipt


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


def train_and_test(model, dataset, config_file_list=None, config_dict=None, saved=True):
    """Train ``model`` on ``dataset`` and evaluate its best checkpoint on the test split.

    Unlike RecBole's run_recbole this never imports ray and skips ``get_flops`` (which deep-copies
    the model, too costly for an LLM backbone).
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    logger = start_run(config)
    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    recommender = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(recommender)
    trainer = safe_trainer_for(config)(config, recommender)
    trainer.provenance["split_sha256"] = split_sha256(train_data, valid_data, test_data)

    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    train_seconds = time.perf_counter() - start
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


def run_recbole_unlearn(model="LLMRec", dataset="ml-100k", config_file_list=None, config_dict=None,
                        nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0):
    """The unlearning protocol for each model of ``model`` (a name, a comma-separated string or a list).

    With several models, each runs on the same split and forget request, and a comparison table and
    plot are written. With ``unlearn_method: none`` each model is only trained and tested.

    ``nproc`` processes on this machine (``world_size`` in all, over several machines reaching rank 0 at
    ``ip``:``port``; this machine's first rank is ``group_offset``) run it together under DDP, as
    RecBole's ``run`` does; the result of rank 0 is returned (None on other machines).
    """
    if nproc > 1 or world_size > 0:
        return distributed.spawn(run_recbole_unlearn, nproc, world_size, ip, port, group_offset,
                                 (model, dataset, config_file_list), config_dict)
    models = [name.strip() for name in (model.split(",") if isinstance(model, str) else model)]
    config = Config(model=models[0], dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    if config["unlearn_method"] == "none":
        results = [train_and_test(name, dataset, config_file_list, config_dict) for name in models]
        if distributed.is_main():
            print(format_results(results))
        return results
    configs = [
        Config(model=name, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
        for name in models
    ]
    for model_config in configs:
        check_supported(model_config)
    results = [unlearn_one(name, dataset, config_file_list, config_dict) for name in models]
    if len(results) > 1 and distributed.is_main():
        directory = os.path.join(config["unlearn_output_dir"], f"comparison-{dataset}-{get_local_time()}")
        table = write_comparison(results, directory)
        print(table)
        print(f"Comparison: {directory}")
    return results


def check_supported(config):
    """Fail before any data is read if a selected method cannot unlearn the configured model."""
    reasons = {}
    for method in get_unlearn_methods(config["unlearn_method"]):
        reason = method.unsupported_reason(config)
        if reason:
            reasons.setdefault(reason, []).append(method.method)
    if reasons:
        raise ValueError(
            "; ".join(
                f"Model {config['model']} cannot be unlearned by method(s) {', '.join(names)}: {reason}"
                for reason, names in reasons.items()
            )
            + "."
        )


def unlearn_one(model, dataset, config_file_list=None, config_dict=None):
    """Original -> forget request -> Retrain -> each selected method -> evaluation, for one model."""
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    check_supported(config)
    methods = get_unlearn_methods(config["unlearn_method"])
    logger = start_run(config)

    previous = config["unlearn_after"]
    if previous:
        protocol, start, start_cost = continue_after(previous, config, methods)
        start_name = "previous"
    else:
        protocol = UnlearnProtocol(config)
        protocol.check(methods)
        (start, start_cost), start_name = protocol.original(), "original"
    reference, reference_cost = protocol.reference(start)
    rows = [
        protocol.evaluate(start_name, start, start_cost, reference),
        protocol.evaluate("retrain", reference, reference_cost, reference),
    ]
    writes_files = distributed.is_main()
    if Retrain in methods and writes_files:
        write_receipt(protocol, Retrain, rows[1], reference_cost, previous)
    for method in methods:
        if method is not Retrain:
            unlearned, cost = protocol.unlearn(method, start)
            rows.append(protocol.evaluate(method.method, unlearned, cost, reference))
            if writes_files:
                write_receipt(protocol, method, rows[-1], cost, previous)

    context = {
        "model": model,
        "dataset": dataset,
        "forget_request": protocol.request.describe(),
        "forget_interactions": len(protocol.forget_rows),
        "retain_interactions": len(protocol.retain_rows),
        "removed_interactions": int(protocol.removed_mask.sum()),
        "seed": config["seed"],
        **protocol.fingerprint,
    }
    if writes_files:
        write_results(rows, protocol.run_dir, context)
        tradeoff_plot(rows, os.path.join(protocol.run_dir, "tradeoff.png"), f"{model} on {dataset}: {context['forget_request']}")
        table = markdown_table(rows)
        logger.info("\n" + table)
        print(f"{model} on {dataset}, {context['forget_request']} "
              f"({context['forget_interactions']} forget / {context['retain_interactions']} retain interactions)")
        print(table)
        print(f"Results: {protocol.run_dir}")
    return {"rows": rows, "run_dir": protocol.run_dir, "context": context}


def continue_after(receipt_path, config, methods):
    """A sequential request: the protocol of this request on top of the one ``receipt_path`` records,
    the model that run left (adapters merged) as the start, and its (zero) cost."""
    receipt, previous, _, _, unlearned = rebuild(receipt_path)
    # SISA only continues SISA (its shards); a shard ensemble cannot be fine-tuned.
    sisa_before = receipt["method"] == SISA.method
    mismatched = [m.method for m in methods if m is not Retrain and (m is SISA) != sisa_before]
    if mismatched:
        raise ValueError(
            f"unlearn_after: method(s) {mismatched} cannot continue from a {receipt['method']} run "
            "(SISA only continues SISA's shards, and a shard ensemble cannot be fine-tuned)."
        )
    protocol = UnlearnProtocol(config, previous.removed_mask)
    if protocol.fingerprint["split_sha256"] != previous.fingerprint["split_sha256"]:
        raise ValueError(f"unlearn_after: {receipt_path} was run on another split of the data.")
    protocol.check(methods)
    directory = os.path.dirname(os.path.abspath(receipt_path))
    protocol.start_files = [os.path.join(directory, e["path"]) for e in receipt["original"] + receipt["unlearned"]]
    if sisa_before:
        names = SISA.file_names(config)
        protocol.files.update(zip(names, protocol.start_files[-len(names):]))
    return protocol, merge_lora(unlearned), {"seconds": 0.0, "peak_rss_mib": 0.0}


def format_results(results):
    metrics = list(dict.fromkeys(key for r in results for key in r["test_result"]))
    header = ["model"] + [f"test {m}" for m in metrics] + ["train s", "trainable params"]
    rows = [
        [r["model"]]
        + [f"{r['test_result'].get(m, float('nan')):.4f}" for m in metrics]
        + [f"{r['train_seconds']:.0f}", f"{r['trainable_parameters']:,}"]
        for r in results
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify"]:
        # Receipt paths, not RecBole options: keep RecBole's Config from reading them off sys.argv.
        sys.argv = sys.argv[:1]
        sys.exit(verify_main(argv[1:]))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", "-m", default="LLMRec", help="model name(s), comma-separated")
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files")
    # Multi-process flags, as RecBole's run_recbole.py names them.
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines (default: nproc)")
    parser.add_argument("--ip", default="localhost", help="address of the machine running rank 0")
    parser.add_argument("--port", default="5678", help="free port on that machine")
    parser.add_argument("--group_offset", type=int, default=0, help="rank of this machine's first process")
    # Any other --key=value is read by RecBole's Config from the command line, as in run_recbole.py.
    args, _ = parser.parse_known_args(argv)
    config_files = args.config_files.strip().split(" ") if args.config_files else None
    return run_recbole_unlearn(args.model, args.dataset, config_file_list=config_files, nproc=args.nproc,
                               world_size=args.world_size, ip=args.ip, port=args.port, group_offset=args.group_offset)
