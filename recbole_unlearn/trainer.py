"""Trainers RecBole finds for our models (see ``registry``)."""

from recbole_unlearn.compat import SafeTrainer


class LLMRecTrainer(SafeTrainer):
    """RecBole's training loop for LLMRec, with safetensors checkpoints instead of pickles."""
