"""Lets RecBole find LLMRec in a process that never imported recbole_unlearn, such as RecBole's own
``run_recbole.py``. The ``recbole_unlearn_autoload.pth`` file installed with the package imports this
module at interpreter start-up; it only appends a meta-path finder (nothing heavy is imported). When
RecBole's ``get_model("LLMRec")`` looks for ``recbole.model.context_aware_recommender.llmrec``, the finder
imports recbole_unlearn, whose registration publishes the model under that name.
"""

import importlib.abc
import sys

MODEL_MODULE = "recbole.model.context_aware_recommender.llmrec"


class LLMRecFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != MODEL_MODULE:
            return None
        import recbole_unlearn  # noqa: F401  (registers LLMRec with RecBole)

        return sys.modules[MODEL_MODULE].__spec__


def install():
    if not any(isinstance(finder, LLMRecFinder) for finder in sys.meta_path):
        sys.meta_path.append(LLMRecFinder())


install()
