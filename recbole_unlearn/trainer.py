"""The trainers RecBole runs for recbole-unlearn: its own loops with safe, resumable checkpoints.

``SafeCheckpointMixin`` swaps RecBole's pickled checkpoints for ``recbole_unlearn.checkpoint``'s
safetensors files, can save and resume the whole training state, and evaluates on every rank's rows in
a multi-process run. ``safe_trainer_for(config)`` gives RecBole's own trainer class for a model with it
mixed in; ``LLMRecTrainer`` is the one RecBole finds for LLMRec (see ``registry``).
"""

import json
import os
import shutil
import time

from recbole.trainer import Trainer
from recbole.utils import get_trainer
from safetensors.torch import load_file, save_file

from recbole_unlearn import distributed
from recbole_unlearn.batching import length_bucketed, length_sorted, set_epoch
from recbole_unlearn.checkpoint import (
    CHECKPOINT_SUFFIX,
    join_tensors,
    load_checkpoint,
    save_checkpoint,
    split_tensors,
)
from recbole_unlearn.distributed import DistributedModelMixin, GatheringCollector
from recbole_unlearn.errors import BadInput
from recbole_unlearn.precision import autocast_dtype, configured_amp_dtype, training_precision
from recbole_unlearn.provenance import config_sha256, file_sha256
from recbole_unlearn.random_state import random_states, set_random_states


class SafeCheckpointMixin:
    """Replaces RecBole's pickled checkpoints with safetensors + JSON (see module docstring).

    With ``resume_dir`` set, the whole training state (weights, optimizer, early-stopping counters, every
    random state and the epoch the batch order is drawn for) is written there before every epoch, and
    ``resume()`` continues an interrupted ``fit`` from it: the same model as an uninterrupted one.

    ``training_seconds`` counts the training epochs' loops only (no validation, no checkpoint writes);
    ``training_seconds_to_best`` is its value when the kept (best) checkpoint was saved: the official
    E2URec code's "Total Train Time", which leaves out the epochs early stopping waits through.
    """

    resume_dir = None
    # The random states a resumed training restores when its first epoch starts.
    pending_random_states = None
    training_seconds = 0.0
    training_seconds_to_best = 0.0

    def __init__(self, config, model):
        super().__init__(config, model)
        if not config["single_spec"]:
            self.eval_collector = GatheringCollector(config)
        self.saved_model_file = os.path.splitext(self.saved_model_file)[0] + CHECKPOINT_SUFFIX
        self.amp_dtype = configured_amp_dtype(config)
        if config["precision_choice"]:
            self.logger.info(f"Training in {training_precision(config)} ({config['precision_choice']}).")
        # Written into every checkpoint and checked when one is loaded back; callers may add to it.
        self.provenance = {
            "model": type(model).__name__,
            "dataset": config["dataset"],
            "config_sha256": config_sha256(config),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        save_checkpoint(
            self.model,
            saved_model_file,
            {
                **self.provenance,
                "epoch": epoch,
                "cur_step": self.cur_step,
                "best_valid_score": float(self.best_valid_score),
            },
        )
        self.training_seconds_to_best = self.training_seconds
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        metadata = load_checkpoint(self.model, resume_file, self.device, expect=self.provenance)
        self.saved_model_file = resume_file
        self.start_epoch = metadata["epoch"] + 1
        self.cur_step = metadata["cur_step"]
        self.best_valid_score = metadata["best_valid_score"]
        self.logger.info(f"Checkpoint loaded; resuming from epoch {self.start_epoch} with a fresh optimizer state.")

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        # Before the epoch, the previous one is complete: trained, validated, best checkpoint saved.
        set_epoch(train_data, epoch_idx)
        if self.pending_random_states:
            set_random_states(train_data, *self.pending_random_states)
            self.pending_random_states = None
        if self.resume_dir:
            self._save_resume_state(epoch_idx, train_data)
        # RecBole's loop reads each batch's loss (.item()), so a GPU has finished the epoch when it returns.
        start = time.perf_counter()
        with autocast_dtype(self.device.type, self.amp_dtype):
            loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self.training_seconds += time.perf_counter() - start
        return loss

    def _save_resume_state(self, next_epoch, train_data):
        # Each rank's own random states (its dropout masks differ from the others').
        per_rank = distributed.gather_on_main(random_states(train_data))
        if not distributed.is_main():
            return
        state_dir = os.path.join(self.resume_dir, f"epoch-{next_epoch}")
        os.makedirs(state_dir, exist_ok=True)
        optimizer_tensors, optimizer_rest = split_tensors(self.optimizer.state_dict())
        random_tensors = {
            f"rank{rank}.{name}": tensor
            for rank, (tensors, _) in enumerate(per_rank)
            for name, tensor in tensors.items()
        }
        random_rest = [rest for _, rest in per_rank]
        files = {}
        for name, tensors in (("optimizer", optimizer_tensors), ("random", random_tensors)):
            files[name] = os.path.join(state_dir, f"{name}.safetensors")
            save_file(tensors, files[name] + ".tmp")
            os.replace(files[name] + ".tmp", files[name])
        save_checkpoint(
            self.model,
            os.path.join(state_dir, "model.safetensors"),
            {
                **self.provenance,
                "next_epoch": next_epoch,
                "cur_step": self.cur_step,
                "best_valid_score": float(self.best_valid_score),
                "best_valid_result": {k: float(v) for k, v in (self.best_valid_result or {}).items()} or None,
                "training_seconds": self.training_seconds,
                "training_seconds_to_best": self.training_seconds_to_best,
                "optimizer": optimizer_rest,
                "optimizer_sha256": file_sha256(files["optimizer"]),
                "random": random_rest,
                "random_sha256": file_sha256(files["random"]),
            },
        )
        pointer = os.path.join(self.resume_dir, "latest.json")
        with open(pointer + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"state": os.path.basename(state_dir)}, f)
        os.replace(pointer + ".tmp", pointer)
        for name in os.listdir(self.resume_dir):
            if name.startswith("epoch-") and name != os.path.basename(state_dir):
                shutil.rmtree(os.path.join(self.resume_dir, name))

    def resume(self):
        """Load the last complete training state from ``resume_dir``, if any; the epoch ``fit`` goes on from."""
        state_dir = distributed.on_main(self._latest_state_dir)
        if state_dir is None:
            return 0
        metadata = load_checkpoint(
            self.model, os.path.join(state_dir, "model.safetensors"), self.device, expect=self.provenance
        )
        self.optimizer.load_state_dict(distributed.on_main(lambda: self._optimizer_state(state_dir, metadata)))
        # The partial folder is named by the cache key, which holds the world size: one state per rank.
        tensors = distributed.on_main(lambda: self._state_tensors(state_dir, metadata, "random"))
        prefix = f"rank{distributed.rank()}."
        own = {name.removeprefix(prefix): tensor for name, tensor in tensors.items() if name.startswith(prefix)}
        self.pending_random_states = (own, metadata["random"][distributed.rank()])
        self.start_epoch = metadata["next_epoch"]
        self.cur_step = metadata["cur_step"]
        self.best_valid_score = metadata["best_valid_score"]
        self.best_valid_result = metadata["best_valid_result"]
        self.training_seconds = metadata["training_seconds"]
        self.training_seconds_to_best = metadata["training_seconds_to_best"]
        self.logger.info(f"Resuming training from epoch {self.start_epoch} ({state_dir}).")
        return self.start_epoch

    def _latest_state_dir(self):
        pointer = os.path.join(self.resume_dir, "latest.json")
        if not os.path.isfile(pointer):
            return None
        with open(pointer, encoding="utf-8") as f:
            return os.path.join(self.resume_dir, json.load(f)["state"])

    def _optimizer_state(self, state_dir, metadata):
        return join_tensors(self._state_tensors(state_dir, metadata, "optimizer", self.device), metadata["optimizer"])

    def _state_tensors(self, state_dir, metadata, name, device="cpu"):
        path = os.path.join(state_dir, f"{name}.safetensors")
        if metadata[f"{name}_sha256"] != file_sha256(path):
            raise BadInput(f"Training state {path} is corrupted; delete {self.resume_dir} to start over.")
        return load_file(path, device=str(device))

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        # Batches of similar prompt lengths pad less (recbole_unlearn.batching); RecBole's order without prompts.
        valid_data = length_sorted(valid_data) if valid_data else valid_data
        return super().fit(length_bucketed(train_data), valid_data, verbose, saved, show_progress, callback_fn)

    def _map_reduce(self, result, num_sample):
        # RecBole averages each rank's metrics weighted by its sample count, which is not the AUC of all
        # samples; GatheringCollector already evaluated every sample on every rank.
        return result

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            load_checkpoint(self.model, checkpoint_file, self.device, expect=self.provenance)
            self.logger.info(f"Loading model parameters from {checkpoint_file}")
        if isinstance(self.eval_collector, GatheringCollector) and eval_data:
            self.eval_collector.total = eval_data.sample_size
        eval_data = length_sorted(eval_data) if eval_data else eval_data
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


class SafeTrainer(SafeCheckpointMixin, Trainer, DistributedModelMixin):
    """RecBole's Trainer with safe checkpoints; used for built-in models run through recbole-unlearn."""


class LLMRecTrainer(SafeTrainer):
    """RecBole's training loop for LLMRec, with safetensors checkpoints instead of pickles."""


_safe_trainers = {Trainer: SafeTrainer}


def safe_trainer_for(config):
    """The training loop RecBole picks for ``config['model']``, with safe checkpoints (a trainer class that
    chooses by config, as LLMRec's does, names its plain loop in ``training_class``)."""
    trainer_class = get_trainer(config["MODEL_TYPE"], config["model"])
    return safe_trainer_class(getattr(trainer_class, "training_class", trainer_class))


def safe_trainer_class(trainer_class):
    """The given RecBole trainer class with safe checkpoints mixed in (itself if it has them)."""
    if issubclass(trainer_class, SafeCheckpointMixin):
        return trainer_class
    if trainer_class not in _safe_trainers:
        _safe_trainers[trainer_class] = type(
            "Safe" + trainer_class.__name__, (SafeCheckpointMixin, trainer_class, DistributedModelMixin), {}
        )
    return _safe_trainers[trainer_class]
