"""RecBole 1.2.1 on today's torch: checkpoints that load with nothing unpickled.

RecBole's Trainer pickles the whole Config with the weights (``torch.save``) and reloads them with
``torch.load``, which torch >= 2.6 refuses by default (``weights_only=True``). Instead of switching
``weights_only`` off, our trainers write the model's tensors with safetensors and the few training
counters as JSON next to them; loading never unpickles anything.

RecBole's Dataset uses chained in-place ``fillna``, which pandas 2 still honours (with a
FutureWarning per call) and pandas 3 silently ignores: setup.py pins pandas < 3 and we silence that
one warning from RecBole's modules.

We never import ``recbole.quick_start`` (it imports ray, which needs ``pkg_resources`` and numpy < 2).

Multi-process runs (``recbole_unlearn.distributed``): RecBole wraps the model in DDP with
``device_ids=[local_rank]``, which torch refuses for a CPU model; ``DistributedModelMixin`` wraps it the
same way on GPU and without device ids on CPU. Checkpoints are written and read by rank 0 only.
"""

import json
import os
import shutil
import warnings

import torch
import recbole.trainer.trainer as recbole_trainer
from recbole.evaluator import Collector
from recbole.trainer import AbstractTrainer, Trainer
from recbole.utils import get_trainer
from safetensors.torch import load_file, load_model, save_file, save_model
from torch.nn.parallel import DistributedDataParallel

from recbole_unlearn import distributed
from recbole_unlearn.provenance import config_sha256, file_sha256, library_versions

CHECKPOINT_SUFFIX = ".safetensors"

warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.dataset")
# RecBole's training loop builds torch.cuda.amp.GradScaler (deprecated alias) on every epoch.
warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.GradScaler", category=FutureWarning)


_recbole_get_tensorboard = recbole_trainer.get_tensorboard


class _NoTensorBoard:
    """What RecBole's trainer calls on its TensorBoard writer, doing nothing."""

    def add_scalar(self, *args, **kwargs):
        pass

    add_hparams = add_scalar
    close = add_scalar


def _tensorboard_on_main(logger):
    """RecBole opens a TensorBoard writer (a folder and an event file) in every trainer of every rank;
    in a multi-process run only rank 0 gets a real one."""
    return _recbole_get_tensorboard(logger) if distributed.is_main() else _NoTensorBoard()


recbole_trainer.get_tensorboard = _tensorboard_on_main


def sidecar_path(checkpoint_file):
    return os.path.splitext(checkpoint_file)[0] + ".json"


def save_checkpoint(model, checkpoint_file, metadata, trainable_only=False):
    """Write ``model``'s tensors and a JSON of what produced them, each atomically (temp file, rename).

    The JSON holds ``metadata`` (model class, config hash, dataset, ...), the library versions and the
    tensors' SHA-256. ``trainable_only`` writes just the parameters that require gradients (a LoRA
    adapter) when the model has frozen ones, and the whole model otherwise. Only rank 0 writes.
    """
    if not distributed.is_main():
        return
    os.makedirs(os.path.dirname(os.path.abspath(checkpoint_file)), exist_ok=True)
    tmp_tensors, tmp_json = checkpoint_file + ".tmp", sidecar_path(checkpoint_file) + ".tmp"
    trainable = {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    partial = trainable_only and len(trainable) < len(list(model.parameters()))
    if partial:
        save_file(trainable, tmp_tensors)
    else:
        save_model(model, tmp_tensors)
    metadata = {
        **metadata,
        "tensors": "trainable" if partial else "all",
        "sha256": file_sha256(tmp_tensors),
        "library_versions": library_versions(),
    }
    with open(tmp_json, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
    os.replace(tmp_tensors, checkpoint_file)
    os.replace(tmp_json, sidecar_path(checkpoint_file))


def read_provenance(checkpoint_file):
    """The JSON written next to ``checkpoint_file``, after checking the tensors are the ones it describes."""
    if not os.path.isfile(checkpoint_file):
        raise FileNotFoundError(f"Checkpoint {checkpoint_file} does not exist.")
    try:
        with open(sidecar_path(checkpoint_file), encoding="utf-8") as f:
            metadata = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"Checkpoint {checkpoint_file} has no readable provenance file {sidecar_path(checkpoint_file)} "
            f"({error}); refusing to load it."
        ) from error
    if "sha256" not in metadata:
        raise ValueError(
            f"Checkpoint {checkpoint_file} records no SHA-256 (written by an older recbole-unlearn); "
            "delete it (and its .json) to train it again."
        )
    if metadata["sha256"] != file_sha256(checkpoint_file):
        raise ValueError(
            f"Checkpoint {checkpoint_file} is corrupted or truncated: its SHA-256 differs from the one "
            "recorded when it was written; refusing to load it."
        )
    return metadata


def load_checkpoint(model, checkpoint_file, device="cpu", expect=None):
    """Load tensors into ``model`` once the provenance file confirms they came from the same model class
    and match every ``expect`` entry (e.g. ``config_sha256``, ``dataset``); nothing is unpickled.

    In a multi-process run every rank calls this together: rank 0 reads the file, the others get its
    weights (and its error, if any)."""
    metadata = distributed.on_main(lambda: _load_checkpoint(model, checkpoint_file, device, expect))
    distributed.broadcast_model(model)
    return metadata


def _load_checkpoint(model, checkpoint_file, device, expect):
    metadata = read_provenance(checkpoint_file)
    expected = {"model": type(model).__name__, **(expect or {})}
    for key, value in expected.items():
        if metadata.get(key) != value:
            raise ValueError(
                f"Checkpoint {checkpoint_file} was written for {key} {metadata.get(key)!r}, "
                f"not {value!r}; refusing to load it."
            )
    missing, unexpected = load_model(model, checkpoint_file, strict=False, device=str(device))
    if metadata.get("tensors") == "trainable":
        # An adapter: the frozen weights come from elsewhere; every trainable one must be in the file.
        missing = [name for name, p in model.named_parameters() if p.requires_grad and name in missing]
    if missing or unexpected:
        raise ValueError(
            f"Checkpoint {checkpoint_file} does not match {expected['model']}'s parameters: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}."
        )
    return metadata


class SafeCheckpointMixin:
    """Replaces RecBole's pickled checkpoints with safetensors + JSON (see module docstring).

    With ``resume_dir`` set, the whole training state (weights, optimizer, early-stopping counters) is
    written there before every epoch, and ``resume()`` continues an interrupted ``fit`` from it.
    """

    resume_dir = None

    def __init__(self, config, model):
        super().__init__(config, model)
        if not config["single_spec"]:
            self.eval_collector = GatheringCollector(config)
        self.saved_model_file = os.path.splitext(self.saved_model_file)[0] + CHECKPOINT_SUFFIX
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
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        metadata = load_checkpoint(self.model, resume_file, self.device, expect=self.provenance)
        self.saved_model_file = resume_file
        self.start_epoch = metadata["epoch"] + 1
        self.cur_step = metadata["cur_step"]
        self.best_valid_score = metadata["best_valid_score"]
        self.logger.info(
            f"Checkpoint loaded; resuming from epoch {self.start_epoch} with a fresh optimizer state."
        )

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        # Before the epoch, the previous one is complete: trained, validated, best checkpoint saved.
        if self.resume_dir:
            self._save_resume_state(epoch_idx)
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _save_resume_state(self, next_epoch):
        if not distributed.is_main():
            return
        state_dir = os.path.join(self.resume_dir, f"epoch-{next_epoch}")
        os.makedirs(state_dir, exist_ok=True)
        optimizer_tensors, optimizer_rest = split_tensors(self.optimizer.state_dict())
        optimizer_file = os.path.join(state_dir, "optimizer.safetensors")
        save_file(optimizer_tensors, optimizer_file + ".tmp")
        os.replace(optimizer_file + ".tmp", optimizer_file)
        save_checkpoint(self.model, os.path.join(state_dir, "model.safetensors"), {
            **self.provenance,
            "next_epoch": next_epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": {k: float(v) for k, v in (self.best_valid_result or {}).items()} or None,
            "optimizer": optimizer_rest,
            "optimizer_sha256": file_sha256(optimizer_file),
        })
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
        metadata = load_checkpoint(self.model, os.path.join(state_dir, "model.safetensors"), self.device,
                                   expect=self.provenance)
        self.optimizer.load_state_dict(distributed.on_main(lambda: self._optimizer_state(state_dir, metadata)))
        self.start_epoch = metadata["next_epoch"]
        self.cur_step = metadata["cur_step"]
        self.best_valid_score = metadata["best_valid_score"]
        self.best_valid_result = metadata["best_valid_result"]
        self.logger.info(f"Resuming training from epoch {self.start_epoch} ({state_dir}).")
        return self.start_epoch

    def _latest_state_dir(self):
        pointer = os.path.join(self.resume_dir, "latest.json")
        if not os.path.isfile(pointer):
            return None
        with open(pointer, encoding="utf-8") as f:
            return os.path.join(self.resume_dir, json.load(f)["state"])

    def _optimizer_state(self, state_dir, metadata):
        optimizer_file = os.path.join(state_dir, "optimizer.safetensors")
        if metadata["optimizer_sha256"] != file_sha256(optimizer_file):
            raise ValueError(f"Optimizer state {optimizer_file} is corrupted; delete {self.resume_dir} to start over.")
        return join_tensors(load_file(optimizer_file, device=str(self.device)), metadata["optimizer"])

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
        return super().evaluate(
            eval_data, load_best_model=False, show_progress=show_progress
        )


def split_tensors(state, prefix=""):
    """A nested state dict as (flat tensors for safetensors, the rest as JSON with tensor names in it)."""
    if isinstance(state, torch.Tensor):
        return {prefix: state.detach().contiguous()}, {"__tensor__": prefix}
    if isinstance(state, dict):
        tensors, rest = {}, {}
        for key, value in state.items():
            # JSON keys are strings: remember integer keys (optimizer state is keyed by parameter index).
            name = f"{key}" if isinstance(key, str) else f"__int__{key}"
            sub_tensors, rest[name] = split_tensors(value, f"{prefix}.{name}" if prefix else name)
            tensors.update(sub_tensors)
        return tensors, rest
    if isinstance(state, (list, tuple)):
        tensors, rest = {}, []
        for index, value in enumerate(state):
            sub_tensors, sub_rest = split_tensors(value, f"{prefix}.{index}")
            tensors.update(sub_tensors)
            rest.append(sub_rest)
        return tensors, rest
    return {}, state


def join_tensors(tensors, rest):
    """The inverse of ``split_tensors``."""
    if isinstance(rest, dict):
        if set(rest) == {"__tensor__"}:
            return tensors[rest["__tensor__"]]
        return {
            (int(key[len("__int__"):]) if key.startswith("__int__") else key): join_tensors(tensors, value)
            for key, value in rest.items()
        }
    if isinstance(rest, list):
        return [join_tensors(tensors, value) for value in rest]
    return rest


class GatheringCollector(Collector):
    """RecBole's evaluation collector, returning every rank's rows, so metrics cover all samples."""

    ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")
    total = None

    def get_data_struct(self):
        struct = super().get_data_struct()
        for key in self.ROW_KEYS:
            if key in struct:
                struct.set(key, distributed.gather_rows(struct.get(key), self.total))
        return struct


class DistributedModelMixin(AbstractTrainer):
    """RecBole's DDP wrapping without its two failures: device ids for a CPU model (gloo) and a
    wrapper around a model with nothing to train (an evaluated ensemble)."""

    def __init__(self, config, model):
        self.config = config
        self.model = model
        if not config["single_spec"] and any(p.requires_grad for p in model.parameters()):
            on_gpu = config["device"].type == "cuda"
            if on_gpu:
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.distributed_model = DistributedDataParallel(
                self.model, device_ids=[config["local_rank"]] if on_gpu else None
            )


class SafeTrainer(SafeCheckpointMixin, Trainer, DistributedModelMixin):
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
            "Safe" + trainer_class.__name__, (SafeCheckpointMixin, trainer_class, DistributedModelMixin), {}
        )
    return _safe_trainers[trainer_class]
