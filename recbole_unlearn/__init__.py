"""recbole-unlearn: recommendation unlearning for LLM-based and classic recommenders in RecBole.

Importing the package registers LLMRec, LLMRecDataset, LLMRecTrainer and the ACC metric with RecBole.
The unlearning protocol is ``run_recbole_unlearn``.
"""

from recbole_unlearn.config import Config
from recbole_unlearn.data.dataset import LLMRecDataset
from recbole_unlearn.model.llmrec import LLMRec
from recbole_unlearn.quick_start import run_recbole_unlearn
from recbole_unlearn.registry import register_all

register_all()

__version__ = "0.1.0"
__all__ = ["Config", "LLMRec", "LLMRecDataset", "register_all", "run_recbole_unlearn"]
