"""The one place that makes RecBole find recbole-unlearn's classes through its own lookups.

- ``recbole.utils.get_model(name)`` imports ``recbole.model.<kind>_recommender.<name.lower()>``:
  we publish our model modules under those names in ``sys.modules``.
- ``recbole.utils.get_trainer`` looks for ``recbole.trainer.<Model>Trainer``, and
  ``recbole.data.create_dataset`` for ``recbole.data.dataset.<Model>Dataset``: we add attributes there.
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

MODEL_MODULES = {"recbole.model.context_aware_recommender.llmrec": llmrec}
TRAINERS = {"LLMRecTrainer": LLMRecTrainer}
DATASETS = {"LLMRecDataset": LLMRecDataset}
METRIC_MODULES = ["recbole_unlearn.evaluation.metrics"]


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
