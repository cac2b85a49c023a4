"""UnlearnTrainer: one loop for every gradient-based unlearning method.

A method is a subclass that names its config prefix (``name``) and defines ``compute_loss(pair)``
on a pair of (forget, retain) batches, reading models through ``recbole_unlearn.model.answer`` so the
same loss serves LLMRec and RecBole's CTR models. RecBole's own ``_train_epoch`` runs the loop, so progress bars,
gradient clipping and the NaN check behave as in any RecBole training.
"""

import copy
import math
from logging import getLogger
from typing import NamedTuple

import torch
from recbole.data.interaction import Interaction

from recbole_unlearn.checkpoint import load_checkpoint, save_checkpoint
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.cost import now
from recbole_unlearn.trainer import SafeTrainer
from recbole_unlearn.unlearn.method import UnlearnMethod


class Pair(NamedTuple):
    forget: Interaction | None
    retain: Interaction | None

    def to(self, device):
        return Pair(*(part.to(device) if part is not None else None for part in self))


class PairedBatches:
    """One epoch = one pass over the forget data; each forget batch comes with the next retain batch,
    cycling through the retain data (which is usually larger). ``retain_data=None`` gives forget only;
    ``retain_only`` gives as many retain batches alone; ``fraction`` < 1 stops after that share of them."""

    def __init__(self, forget_data, retain_data=None, retain_only=False, fraction=1.0):
        if retain_only and retain_data is None:
            raise BadInput("A retain-only epoch needs retain data.")
        self.forget_data, self.retain_data, self.retain_only = forget_data, retain_data, retain_only
        self.batches = math.ceil(fraction * len(forget_data))

    def __len__(self):
        return self.batches

    # RecBole's loop reshuffles a multi-process epoch with ``train_data.sampler.set_epoch(epoch)``.
    @property
    def shuffle(self):
        return self.forget_data.shuffle

    @property
    def sampler(self):
        return self

    def set_epoch(self, epoch):
        for data in (self.forget_data, self.retain_data):
            if data is not None and hasattr(data.sampler, "set_epoch"):
                data.sampler.set_epoch(epoch)

    def __iter__(self):
        retain = self._cycle() if self.retain_data is not None else None
        for _, forget_batch in zip(range(self.batches), self.forget_data):
            yield Pair(None if self.retain_only else forget_batch, next(retain) if retain is not None else None)

    def _cycle(self):
        while True:
            empty = True
            for batch in self.retain_data:
                empty = False
                yield batch
            if empty:
                raise BadInput("The retain data has no batch to pair with the forget batches.")


class UnlearnTrainer(SafeTrainer, UnlearnMethod):
    needs_gradients = True

    def __init__(self, config, model, example=None):
        self.config = config
        super().__init__(config, self.prepare_model(model, example))
        self.epochs = self.param("epochs")

    @classmethod
    def run(cls, protocol, start):
        """Unlearn from a copy of ``start`` (which stays untouched)."""
        trainer = cls(protocol.config, copy.deepcopy(start), protocol.example)
        batch_size = trainer.param("train_batch_size")
        trainer.unlearn(
            protocol.forget_loader(batch_size),
            protocol.retained_loader(protocol.retain_rows, batch_size),
            show_progress=protocol.config["show_progress"],
        )
        path = protocol.checkpoint_path(cls.name)
        trainer.save_unlearned(path, protocol.provenance(method=cls.name))
        protocol.files[cls.name] = path
        return trainer.model

    @classmethod
    def load(cls, protocol, start, paths):
        """Rebuild the model as for unlearning (adapters included), then read the saved weights."""
        model = cls(protocol.config, copy.deepcopy(start), protocol.example).model
        load_checkpoint(model, paths[0], protocol.config["device"], expect=protocol.provenance(method=cls.name))
        return model

    def param(self, key):
        """The method's hyper-parameter ``<method>_<key>`` (defaults in properties/method/); where that is
        unset (``~``), the shared budget's ``unlearn_<key>`` (learning rate, epochs, batch size)."""
        name = f"{self.name}_{key}"
        if name not in self.config:
            raise BadInput(f"Config key '{name}' is missing: unlearning method '{self.name}' needs it.")
        value = self.config[name]
        if value is None and f"unlearn_{key}" in self.config:
            return self.config[f"unlearn_{key}"]
        return value

    def prepare_model(self, model, example):
        """Change the model before the optimizer is built (e.g. add adapters; ``example`` is a forget
        batch); default: as it is."""
        return model

    def prepare(self, forget_data, retain_data):
        """Work done before the loop (e.g. building teachers); counted in the unlearning time."""

    def schedule(self, forget_data, retain_data):
        """The epochs, each an iterable of Pair batches."""
        return [PairedBatches(forget_data, retain_data)] * self.epochs

    def compute_loss(self, pair):
        raise NotImplementedError

    def _build_optimizer(self, **kwargs):
        kwargs.setdefault("params", [p for p in self.model.parameters() if p.requires_grad])
        kwargs.setdefault("learning_rate", self.param("learning_rate"))
        return super()._build_optimizer(**kwargs)

    def unlearn(self, forget_data, retain_data, show_progress=False):
        start = now()
        self.prepare(forget_data, retain_data)
        # Published timings often leave this out (E2URec's augmented model is a script of its own there).
        self.logger.info(f"{self.name} preparation: {now() - start:.1f} s")
        for epoch, batches in enumerate(self.schedule(forget_data, retain_data)):
            loss = self._train_epoch(batches, epoch, loss_func=self.compute_loss, show_progress=show_progress)
            self.logger.info(f"{self.name} epoch {epoch}: train loss {loss:.4f}")
        return self.model

    def save_unlearned(self, checkpoint_file, provenance):
        """The trainable weights only (the whole model for a full fine-tune, the adapters for LoRA)."""
        save_checkpoint(
            self.model, checkpoint_file, {**provenance, "model": type(self.model).__name__}, trainable_only=True
        )


class FrozenOutputs:
    """Outputs of frozen models per training sample, computed on first use and reused in later epochs,
    within ``budget_mib`` (beyond it, computed per batch). A sample is known by its user and item ids (and
    its sampled negative's, if any), so a subset with a repeated user-item pair is not cached. They are
    computed in float32 even inside a mixed-precision loop, so a sample's output does not depend on the
    batch it was computed in."""

    def __init__(self, config, budget_mib, *loaders):
        self.device_type = torch.device(config["device"]).type
        self.fields = (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"])
        # A ranking model's pairwise answer also depends on the sampled negative, drawn anew each epoch.
        self.negative = config["NEG_PREFIX"] + config["ITEM_ID_FIELD"]
        self.budget, self.used, self.rows = budget_mib * 2**20, 0, {}
        for loader in loaders:
            if loader is not None and not self._unique(loader._dataset):
                self.budget = 0
                getLogger().warning("A training subset repeats a user-item pair: frozen outputs are not cached.")

    def _unique(self, dataset):
        pairs = set(zip(*(dataset.inter_feat[field].tolist() for field in self.fields)))
        return len(pairs) == len(dataset)

    @torch.no_grad()
    def __call__(self, name, interaction, compute):
        fields = [*self.fields, *([self.negative] if self.negative in interaction else [])]
        keys = [(name, *key) for key in zip(*(interaction[field].tolist() for field in fields))]
        if all(key in self.rows for key in keys):
            return torch.stack([self.rows[key] for key in keys])
        with torch.autocast(self.device_type, enabled=False):
            values = compute(interaction)
        size = values.numel() * values.element_size()
        if self.used + size <= self.budget:
            self.used += size
            self.rows.update(zip(keys, values))
        return values


def frozen(model):
    """``model`` in eval mode with no trainable parameter (a teacher or a reference)."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def kl_to_teacher(teacher_logits, student_logits, temperature=1.0):
    """KL(teacher || student) over the last dimension at ``temperature``, averaged over the batch and
    scaled by temperature² (Hinton et al.), so gradients keep their size as the temperature changes."""
    return temperature**2 * torch.nn.functional.kl_div(
        torch.log_softmax(student_logits / temperature, dim=-1),
        torch.log_softmax(teacher_logits / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
