"""Equal-budget tuning of the approximate methods on a validation request (``unlearn_tune: N``).

Every method with a search space (``<method>_search`` in its YAML) gets the same ``N`` trials of optuna's
TPE sampler, seeded alike. Trials run on a validation forget request: drawn like the reported one (level,
selection, ratio) among the units the reported request leaves, with its own Retrain (cached), so no
trial reads the reported forget data, as forget or as retain data. A trial's objective is the validation
request's gap closed; a trial whose valid utility (AUC, or NDCG@10 for a ranking model) falls more than
``unlearn_tune_max_utility_drop`` below the Original's is infeasible. The best feasible trial's values
then run on the reported request; without one, the defaults do. A validation request without a forgetting
signal (gap closed NaN for every trial) runs no trial: every method keeps its defaults.
"""

import os
from dataclasses import replace
from logging import getLogger

import optuna

from recbole_unlearn.config import config_with, configured_as
from recbole_unlearn.data.forget import ForgetRequest
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.cost import now
from recbole_unlearn.evaluation.labeled_metrics import SIGNIFICANCE
from recbole_unlearn.trainer import safe_trainer_for
from recbole_unlearn.unlearn.protocol import UnlearnProtocol

# A generator stream of its own: the validation request's draw never coincides with the reported one's.
VALIDATION_STREAM = 4
KINDS = ("loguniform", "uniform", "int")


def check_tuning(config, methods):
    """``unlearn_tune`` and every tuned method's search space, checked before anything is trained."""
    trials = config["unlearn_tune"]
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 0:
        raise BadInput(f"unlearn_tune must be a number of trials, 0 or more; got {trials!r}.")
    if trials and ForgetRequest.from_config(config).ids:
        raise BadInput("unlearn_tune draws a validation request like the reported one: it needs forget_ratio, not ids.")
    for method in methods:
        for key, space in search_space(config, method).items():
            if f"{method.name}_{key}" not in config:
                raise BadInput(f"{method.name}_search names {key!r}, but {method.name}_{key} is no declared key.")
            if not (isinstance(space, list) and len(space) == 3 and space[0] in KINDS and space[1] < space[2]):
                raise BadInput(f"{method.name}_search[{key!r}] must be [{'|'.join(KINDS)}, low, high]; got {space!r}.")


def search_space(config, method):
    """``<method>_search`` ({} for a method without one: it is not tuned)."""
    key = f"{method.name}_search"
    return (config[key] if key in config else None) or {}


def suggest(trial, key, space):
    kind, low, high = space
    if kind == "int":
        return trial.suggest_int(key, int(low), int(high))
    return trial.suggest_float(key, low, high, log=kind == "loguniform")


def validation_protocol(protocol):
    """The protocol of the validation request: ``protocol``'s request drawn again, among what it retains."""
    request = replace(protocol.request, seed=[protocol.config["seed"], VALIDATION_STREAM], among_retained=True)
    validation = UnlearnProtocol(protocol.config, before=protocol, request=request)
    validation.run_dir = os.path.join(protocol.run_dir, "tuning")
    return validation


def valid_utility(protocol, model, outputs):
    """The utility a trial must keep: NDCG@10 on valid for a ranking model, else RecBole's AUC on valid."""
    if protocol.ranking:
        return outputs.utility["valid"]["ndcg@10"]
    trainer = safe_trainer_for(protocol.config)(protocol.config, model)
    return trainer.evaluate(protocol.valid_data, load_best_model=False, show_progress=False)["auc"]


def tune(protocol, methods, start):
    """{method name: the search's record} for every method of ``methods`` with a search space: its trials
    (values, gap closed, utility drop), the chosen values (None: the defaults), its seconds and the
    validation request's signal p-value."""
    config, logger = protocol.config, getLogger()
    tuned = [method for method in methods if search_space(config, method)]
    if not config["unlearn_tune"] or not tuned:
        return {}
    validation = validation_protocol(protocol)
    logger.info(f"Tuning on the validation {validation.request.describe()}")
    retrained, _ = validation.retrain(start)
    retrained_outputs = validation.evaluated_outputs(retrained, retrained)
    start_outputs = validation.evaluated_outputs(start, retrained, retrained_outputs)
    references = (retrained_outputs, start_outputs)
    signal_p = validation.signal_p(*references)
    if not signal_p < SIGNIFICANCE:
        logger.warning(
            f"No trial runs: the validation request has no forgetting signal (signal p = {signal_p:.3g}), so "
            "gap closed, the objective, would be NaN for every trial; every method runs with its defaults."
        )
        return {method.name: {"trials": [], "values": None, "seconds": 0.0, "signal_p": signal_p} for method in tuned}
    baseline = valid_utility(validation, start, start_outputs)
    gap_key = "forget_gap_closed_topk" if protocol.ranking else "forget_gap_closed"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    records = {}
    for method in tuned:
        began, trials = now(), []

        def objective(trial, method=method, trials=trials):
            values = {key: suggest(trial, key, space) for key, space in search_space(config, method).items()}
            with configured_as(validation, config_with(config, **{f"{method.name}_{k}": v for k, v in values.items()})):
                model, cost = validation.unlearn(method, start)
                outputs = validation.evaluated_outputs(model, retrained, retrained_outputs)
                row = validation.evaluate(method.name, model, cost, outputs, *references)
                drop = baseline - valid_utility(validation, model, outputs)
            trials.append({"values": values, "gap_closed": row[gap_key], "utility_drop": drop})
            feasible = drop <= config["unlearn_tune_max_utility_drop"] and row[gap_key] == row[gap_key]
            # Infeasible trials rank below every feasible one (gap closed is at least -1e6 in practice).
            return row[gap_key] if feasible else -1e9 - drop

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=config["seed"]))
        study.optimize(objective, n_trials=config["unlearn_tune"])
        feasible = study.best_value > -1e9
        records[method.name] = {
            "trials": trials,
            "values": study.best_params if feasible else None,
            "seconds": now() - began,
            "signal_p": signal_p,
        }
        if not feasible:
            logger.warning(f"No trial of {method.name} kept valid utility: it runs with its defaults.")
    return records


def tuned_config(config, method, record):
    """``config`` with the search's chosen values of ``method`` (None: ``config``), also among the options
    receipts record, where ``unlearn_tune`` is 0: ``verify`` rebuilds the tuned model without searching."""
    if not record or not record["values"]:
        return config
    values = {f"{method.name}_{key}": value for key, value in record["values"].items()}
    changed = config_with(config, **values)
    changed.external_config_dict = {**config.external_config_dict, **values, "unlearn_tune": 0}
    return changed
