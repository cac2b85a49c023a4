"""The one place that makes RecBole find recbole-unlearn's classes through its own lookups.

- ``recbole.utils.get_model(name)`` imports ``recbole.model.<kind>_recommender.<name.lower()>``:
  we publish our model modules under those names in ``sys.modules``.
- ``recbole.utils.get_trainer`` looks for ``recbole.trainer.<Model>Trainer``, and
  ``recbole.data.create_dataset`` for ``recbole.data.dataset.<Model>Dataset``: we add attributes there.
- Unlearning methods are selected by the config key ``unlearn_method`` from ``UNLEARN_METHODS``.
- Metrics: RecBole builds its metric tables at import; we merge ours into them.
Every step is idempotent, so importing recbole_unlearn twice (or reloading) changes nothing.
"""

import importlib
import sys

import recbole.data.dataset
import recbole.trainer
from recbole.evaluator import register

from recbole_unlearn.data.dataset import LLMRecDataset
from recbole_unlearn.model import llmrec
from recbole_unlearn.trainer import LLMRecTrainer
from recbole_unlearn.unlearn.methods.bad_teacher import BadTeacher
from recbole_unlearn.unlearn.methods.e2urec import E2URec
from recbole_unlearn.unlearn.methods.neggrad import NegGrad
from recbole_unlearn.unlearn.methods.retrain import Retrain
from recbole_unlearn.unlearn.methods.sisa import SISA

MODEL_MODULES = {"recbole.model.context_aware_recommender.llmrec": llmrec}
TRAINERS = {"LLMRecTrainer": LLMRecTrainer}
DATASETS = {"LLMRecDataset": LLMRecDataset}
METRIC_MODULES = ["recbole_unlearn.evaluation.metrics"]
# The config key `unlearn_method` selects from these (in this order for `all`).
UNLEARN_METHODS = {method.method: method for method in (Retrain, SISA, NegGrad, BadTeacher, E2URec)}


def get_unlearn_methods(names):
    """The method classes named by ``unlearn_method``: one name, a comma-separated list, or ``all``."""
    if isinstance(names, str):
        names = list(UNLEARN_METHODS) if names.strip() == "all" else names.split(",")
    unknown = [name for name in names if name.strip() not in UNLEARN_METHODS]
    if unknown:
        raise ValueError(f"unlearn_method {unknown} is unknown; choose from {list(UNLEARN_METHODS)} or 'all'.")
    return [UNLEARN_METHODS[name.strip()] for name in names]


def register_models():
    for name, module in MODEL_MODULES.items():
        sys.modules[name] = module
        package_name, _, attribute = name.rpartition(".")
        setattr(importlib.import_module(package_name), attribute, module)


def register_trainers():
    for name, trainer_class in TRAINERS.items():
        setattr(recbole.trainer, name, trainer_class)


def register_datasets():
    for name, dataset_class in DATASETS.items():
        setattr(recbole.data.dataset, name, dataset_class)


def register_metrics():
    for module_name in METRIC_MODULES:
        importlib.import_module(module_name)
        smaller, information, types, classes = register.cluster_info(module_name)
        register.smaller_metrics.extend(m for m in smaller if m not in register.smaller_metrics)
        register.metric_information.update(information)
        register.metric_types.update(types)
        register.metrics_dict.update(classes)


def register_all():
    register_models()
    register_trainers()
    register_datasets()
    register_metrics()
