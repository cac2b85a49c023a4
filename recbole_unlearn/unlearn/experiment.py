"""One unlearning experiment for one model, in order: Original (or a previous request's model) ->
forget request -> Retrain -> each selected method -> evaluation -> results, plot and receipts."""

import os
from logging import getLogger

from recbole.utils import get_model

from recbole_unlearn import distributed
from recbole_unlearn.config import configured_as
from recbole_unlearn.data.forget import ForgetRequest
from recbole_unlearn.errors import BadInput, NotApplicable
from recbole_unlearn.evaluation.report import markdown_table, tradeoff_plot, write_results
from recbole_unlearn.model.ranking import is_ranking
from recbole_unlearn.precision import training_precision
from recbole_unlearn.provenance import machine
from recbole_unlearn.unlearn.method import get_unlearn_methods, selects_every_method
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.receipt import write_receipt
from recbole_unlearn.unlearn.sequential import continue_after
from recbole_unlearn.unlearn.tuning import check_tuning, tune, tuned_config


def check_supported(config):
    """The selected methods that can unlearn the configured model, checked before any data is read (also
    that the forget request is well formed; ids are checked against the data later). A method named
    explicitly that cannot is an error; ``unlearn_method: all`` skips it, logging why."""
    ForgetRequest.from_config(config)
    if not config["single_spec"] and is_ranking(get_model(config["model"])):
        raise BadInput(
            f"{config['model']} is a ranking model: its unlearning experiment runs in one process (its "
            "forget-set evaluation is not gathered across ranks); run it without nproc/world_size."
        )
    methods, reasons = [], {}
    for method in get_unlearn_methods(config["unlearn_method"]):
        reason = method.unsupported_reason(config)
        if reason:
            reasons.setdefault(reason, []).append(method.name)
        else:
            methods.append(method)
    message = "; ".join(
        f"Model {config['model']} cannot be unlearned by method(s) {', '.join(names)}: {reason}"
        for reason, names in reasons.items()
    )
    if reasons and (not selects_every_method(config["unlearn_method"]) or not methods):
        raise NotApplicable(message + ".")
    if reasons:
        getLogger().warning(f"Skipping: {message}.")
    return methods


def run_experiment(config):
    """The experiment ``config`` describes: ``rows`` (one per model), ``run_dir``, ``context`` and ``model``
    (the last method's unlearned model)."""
    methods = check_supported(config)
    check_tuning(config, methods)
    previous = config["unlearn_after"]
    if previous:
        protocol, start, start_cost, methods = continue_after(previous, config, methods)
        start_name = "previous"
    else:
        protocol = UnlearnProtocol(config)
        methods = protocol.check(methods)
        (start, start_cost), start_name = protocol.original(), "original"
    retrained, retrain_cost = protocol.retrain(start)
    retrained_outputs = protocol.evaluated_outputs(retrained, retrained, cached_as="retrain")
    start_outputs = protocol.evaluated_outputs(start, retrained, retrained_outputs, cached_as=start_name)
    references = (retrained_outputs, start_outputs)
    retrain_row = protocol.evaluate("retrain", retrained, retrain_cost, retrained_outputs, *references)
    start_row = protocol.evaluate(start_name, start, start_cost, start_outputs, *references)
    rows, model = [start_row, retrain_row], retrained
    writes_files = distributed.is_main()
    searches = tune(protocol, methods, start)
    for method in methods:
        search = searches.get(method.name)
        with configured_as(protocol, tuned_config(config, method, search)):
            if method.is_retrain:
                row, cost, model = retrain_row, retrain_cost, retrained
            else:
                model, cost = protocol.unlearn(method, start)
                outputs = protocol.evaluated_outputs(model, retrained, retrained_outputs)
                row = protocol.evaluate(method.name, model, cost, outputs, *references)
                if search:
                    row.update(tuned=search["values"] is not None, tuned_values=search["values"])
                    row["tune_seconds"] = search["seconds"]
                rows.append(row)
            if writes_files:
                write_receipt(protocol, method, row, cost, previous, search)

    context = {
        "model": config["model"],
        "dataset": config["dataset"],
        "forget_request": protocol.request.describe(),
        "forget_interactions": len(protocol.forget_rows),
        "retain_interactions": len(protocol.retain_rows),
        "removed_interactions": int(protocol.removed_mask.sum()),
        "seed": config["seed"],
        "training_precision": training_precision(config),
        **protocol.fingerprints,
        "machine": machine(),
    }
    if writes_files:
        write_results(rows, protocol.run_dir, context)
        title = f"{config['model']} on {config['dataset']}: {context['forget_request']}"
        tradeoff_plot(rows, os.path.join(protocol.run_dir, "tradeoff.png"), title)
        getLogger().info("\n" + markdown_table(rows))
    return {"rows": rows, "run_dir": protocol.run_dir, "context": context, "model": model}
