"""RecBole 1.2.1 on today's torch: checkpoints that load with nothing unpickled.

RecBole's Trainer pickles the whole Config with the weights (``torch.save``) and reloads them with
``torch.load``, which torch >= 2.6 refuses by default (``weights_only=True``). Instead of switching
``weights_only`` off, our trainers write the model's tensors with safetensors and the few training
counters as JSON next to them; loading never unpickles anything.

RecBole's Dataset uses chained in-place ``fillna``, which pandas 2 still honours (with a
FutureWarning per call) and pandas 3 silently ignores: setup.py pins pandas < 3 and we silence that
one warning from RecBole's modules.

We never import ``recbole.quick_start`` (it imports ray, which needs ``pkg_resources`` and numpy < 2).
"""

import json
import os
import warnings

from recbole.trainer import Trainer
from recbole.utils import get_trainer
from safetensors.torch import load_model, save_file, save_model

CHECKPOINT_SUFFIX = ".safetensors"

warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.dataset")
# RecBole's training loop builds torch.cuda.amp.GradScaler (deprecated alias) on every epoch.
warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.GradScaler", category=FutureWarning)


def sidecar_path(checkpoint_file):
    return os.path.splitext(checkpoint_file)[0] + ".json"


def save_checkpoint(model, checkpoint_file, metadata, trainable_only=False):
    """Write ``model``'s tensors and ``metadata`` atomically (temp file, then rename).

    ``trainable_only`` writes just the parameters that require gradients (a LoRA adapter) when the
    model has frozen ones, and the whole model otherwise.
    """
    os.makedirs(os.path.dirname(os.path.abspath(checkpoint_file)), exist_ok=True)
    tmp_tensors, tmp_json = checkpoint_file + ".tmp", sidecar_path(checkpoint_file) + ".tmp"
    trainable = {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    partial = trainable_only and len(trainable) < len(list(model.parameters()))
    metadata = {**metadata, "tensors": "trainable" if partial else "all"}
    if partial:
        save_file(trainable, tmp_tensors)
    else:
        save_model(model, tmp_tensors)
    with open(tmp_json, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
    os.replace(tmp_tensors, checkpoint_file)
    os.replace(tmp_json, sidecar_path(checkpoint_file))


def load_checkpoint(model, checkpoint_file, device="cpu"):
    """Load tensors into ``model`` after checking the sidecar says they came from the same model class."""
    with open(sidecar_path(checkpoint_file), encoding="utf-8") as f:
        metadata = json.load(f)
    expected = type(model).__name__
    if metadata.get("model") != expected:
        raise ValueError(
            f"Checkpoint {checkpoint_file} was written by model {metadata.get('model')!r}, "
            f"not {expected!r}; refusing to load it."
        )
    missing, unexpected = load_model(model, checkpoint_file, strict=False, device=str(device))
    if metadata.get("tensors") == "trainable":
        # An adapter: the frozen weights come from elsewhere; every trainable one must be in the file.
        missing = [name for name, p in model.named_parameters() if p.requires_grad and name in missing]
    if missing or unexpected:
        raise ValueError(
            f"Checkpoint {checkpoint_file} does not match {expected}'s parameters: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}."
        )
    return metadata


class SafeCheckpointMixin:
    """Replaces RecBole's pickled checkpoints with safetensors + JSON (see module docstring)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.saved_model_file = os.path.splitext(self.saved_model_file)[0] + CHECKPOINT_SUFFIX

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        save_checkpoint(
            self.model,
            saved_model_file,
            {
                "model": type(self.model).__name__,
                "epoch": epoch,
                "cur_step": self.cur_step,
                "best_valid_score": float(self.best_valid_score),
            },
        )
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        metadata = load_checkpoint(self.model, resume_file, self.device)
        self.saved_model_file = resume_file
        self.start_epoch = metadata["epoch"] + 1
        self.cur_step = metadata["cur_step"]
        self.best_valid_score = metadata["best_valid_score"]
        self.logger.info(
            f"Checkpoint loaded; resuming from epoch {self.start_epoch} with a fresh optimizer state."
        )

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            load_checkpoint(self.model, checkpoint_file, self.device)
            self.logger.info(f"Loading model parameters from {checkpoint_file}")
        return super().evaluate(
            eval_data, load_best_model=False, show_progress=show_progress
        )


class SafeTrainer(SafeCheckpointMixin, Trainer):
    """RecBole's Trainer with safe checkpoints; used for built-in models run through recbole-unlearn."""


_safe_trainers = {Trainer: SafeTrainer}


def safe_trainer_for(config):
    """The trainer class RecBole picks for ``config['model']``, with safe checkpoints."""
    return safe_trainer_class(get_trainer(config["MODEL_TYPE"], config["model"]))


def safe_trainer_class(trainer_class):
    """The given RecBole trainer class with safe checkpoints mixed in (itself if it has them)."""
    if issubclass(trainer_class, SafeCheckpointMixin):
        return trainer_class
    if trainer_class not in _safe_trainers:
        _safe_trainers[trainer_class] = type(
            "Safe" + trainer_class.__name__, (SafeCheckpointMixin, trainer_class), {}
        )
    return _safe_trainers[trainer_class]
