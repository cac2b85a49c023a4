"""The unlearning experiment inside RecBole's own flow (``run_recbole``, ``objective_function``,
``HyperTuning``): the trainer RecBole's ``get_trainer`` returns for any model (LLMRec, a CTR or a ranking
model) when ``unlearn_method`` names a method.

``fit`` runs the experiment of the config (cached Original, forget request, cached Retrain, the method;
results, plot and receipts written as by our command line) and takes the unlearned model as its model;
``evaluate`` gives RecBole's metrics of that model on the data it is handed, plus the run's forgetting
metrics. RecBole's tuning optimises ``best_valid_score``: the unlearned model's ``valid_metric`` on valid,
or the registered metric ``unlearn_objective`` names (whose direction then sets ``valid_metric_bigger``).
"""

from recbole_unlearn.config import config_with
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.metrics import METRICS
from recbole_unlearn.trainer import LLMRecTrainer
from recbole_unlearn.unlearn.experiment import run_experiment
from recbole_unlearn.unlearn.method import get_unlearn_methods, selects_unlearning


class UnlearningTrainer(LLMRecTrainer):
    def __init__(self, config, model):
        methods = get_unlearn_methods(config["unlearn_method"])
        if len(methods) != 1:
            raise BadInput(
                f"unlearn_method {config['unlearn_method']!r}: a RecBole trainer reports one unlearned model, "
                "so name one method here; recbole-unlearn's run_recbole_unlearn compares several."
            )
        if config["unlearn_seeds"]:
            raise BadInput(
                "unlearn_seeds: a RecBole trainer reports one run; recbole-unlearn's run_recbole_unlearn runs "
                "every seed and summarises them."
            )
        objective = config["unlearn_objective"]
        # The experiment's models pick their best epoch by the user's valid_metric and its direction; only
        # RecBole's comparison of trials follows the objective's.
        self.experiment_config = config_with(config)
        if objective is not None:
            if objective not in METRICS:
                raise BadInput(f"unlearn_objective {objective!r} is not a registered metric: {list(METRICS)}.")
            config["valid_metric_bigger"] = METRICS[objective].better != "lower"
        super().__init__(config, model)
        self.experiment = None

    @property
    def unlearned_row(self):
        return self.experiment["rows"][-1]

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self.experiment = run_experiment(self.experiment_config)
        self.model = self.experiment["model"]
        self.best_valid_result = self.evaluate(valid_data) if valid_data else dict(self.forgetting_metrics())
        objective = self.config["unlearn_objective"]
        self.best_valid_score = (
            self.unlearned_row[objective] if objective else self.best_valid_result[self.valid_metric]
        )
        return self.best_valid_score, self.best_valid_result

    def forgetting_metrics(self):
        """Every registered metric of the run's row except the test ones (RecBole's own evaluation gives those)."""
        return {
            key: value for key, value in self.unlearned_row.items() if key in METRICS and not key.startswith("test_")
        }

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if self.experiment is None:
            raise RuntimeError("UnlearningTrainer.evaluate needs fit() first: the unlearned model comes from it.")
        result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        result.update(self.forgetting_metrics())
        return result


class ConfiguredLLMRecTrainer(LLMRecTrainer):
    """What RecBole's ``get_trainer`` finds for LLMRec (see ``registry``): ``LLMRecTrainer``, or the
    ``UnlearningTrainer`` when the config names an unlearning method."""

    # The plain training loop, for code that trains a model whatever the config selects (the protocol).
    training_class = LLMRecTrainer

    def __new__(cls, config, model):
        if cls is ConfiguredLLMRecTrainer and selects_unlearning(config["unlearn_method"]):
            return UnlearningTrainer(config, model)
        return super().__new__(cls)


_configured = {}


def configured_trainer(trainer_class):
    """``trainer_class`` (what RecBole's ``get_trainer`` found for a model) that is an ``UnlearningTrainer``
    when the config names an unlearning method."""
    if issubclass(trainer_class, ConfiguredLLMRecTrainer):
        return trainer_class
    if trainer_class not in _configured:

        def __new__(cls, config, model):
            if selects_unlearning(config["unlearn_method"]):
                return UnlearningTrainer(config, model)
            return object.__new__(cls)

        _configured[trainer_class] = type(
            f"Configured{trainer_class.__name__}",
            (trainer_class,),
            {"__new__": __new__, "training_class": trainer_class, "__doc__": configured_trainer.__doc__},
        )
    return _configured[trainer_class]
