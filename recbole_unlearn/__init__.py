"""recbole-unlearn: recommendation unlearning for LLM-based and classic recommenders in RecBole.

Importing the package registers LLMRec, LLMRecDataset, LLMRecTrainer, the ACC metric, the unlearning
methods and the result metrics (``recbole_unlearn.registry``). The unlearning protocol is
``run_recbole_unlearn``.
"""

from recbole_unlearn import compat  # noqa: F401  (warning filters for RecBole on today's stack)
from recbole_unlearn.config import Config
from recbole_unlearn.data.dataset import LLMRecDataset
from recbole_unlearn.evaluation.metrics import register_metric
from recbole_unlearn.model.llmrec import LLMRec
from recbole_unlearn.quick_start import run_recbole_unlearn
from recbole_unlearn.registry import register_all
from recbole_unlearn.unlearn.method import UnlearnMethod, register_method

register_all()

__version__ = "0.2.0"
__all__ = [
    "Config",
    "LLMRec",
    "LLMRecDataset",
    "UnlearnMethod",
    "register_all",
    "register_method",
    "register_metric",
    "run_recbole_unlearn",
]
