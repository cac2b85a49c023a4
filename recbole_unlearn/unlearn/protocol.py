"""One unlearning experiment: Original -> forget request -> Retrain -> methods -> evaluation.

Original and Retrain models (and SISA's untouched shards) are cached by a hash of everything that
determines them, so comparing several methods, or running again, trains them once.
"""

import contextlib
import hashlib
import os
import shutil
from logging import getLogger

import numpy as np
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_local_time, get_model, init_seed

from recbole_unlearn import distributed
from recbole_unlearn.compat import load_checkpoint, safe_trainer_for, save_checkpoint
from recbole_unlearn.data.forget import ForgetRequest
from recbole_unlearn.data.loaders import eval_loader, train_loader
from recbole_unlearn.evaluation.cost import CostMeter
from recbole_unlearn.evaluation.metrics import forget_metrics
from recbole_unlearn.provenance import config_sha256
from recbole_unlearn.registry import UNLEARN_METHODS
from recbole_unlearn.unlearn.methods.retrain import Retrain

# Keys of the protocol and its methods: they do not change the Original (or Retrain) model.
UNLEARN_PREFIXES = ("unlearn_", "forget_", *(f"{name}_" for name in UNLEARN_METHODS))


def config_key(config, *extra):
    """SHA-256 of the configuration that determines an Original or Retrain model, plus ``extra``."""
    return config_sha256(config, *extra, ignore_prefixes=UNLEARN_PREFIXES)


def raw_users_items(dataset):
    """The raw user and item tokens of every row of ``dataset``."""
    inter = dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, inter[dataset.uid_field].numpy())
    items = dataset.id2token(dataset.iid_field, inter[dataset.iid_field].numpy())
    return users, items


def interaction_tokens(dataset):
    """``user:item:label`` in raw tokens for every row of ``dataset``."""
    users, items = raw_users_items(dataset)
    labels = dataset.inter_feat[dataset.label_field].numpy()
    return [f"{user}:{item}:{label:g}" for user, item, label in zip(users, items, labels)]


def split_sha256(*parts):
    """SHA-256 of a split: raw user, item and label of every row of each part (dataloaders), in order."""
    digest = hashlib.sha256()
    for data in parts:
        digest.update("\n".join(interaction_tokens(data._dataset)).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class UnlearnProtocol:
    def __init__(self, config, removed_before=None):
        """``removed_before``: a mask of training rows earlier requests removed (sequential requests);
        this request forgets what it adds, and the retained data excludes both."""
        self.config = config
        self.logger = getLogger()
        dataset = create_dataset(config)
        self.train_data, self.valid_data, self.test_data = data_preparation(config, dataset)
        self.train_dataset = self.train_data._dataset
        self.request = ForgetRequest.from_config(config)
        requested = self.request.mask(self.train_dataset)
        if removed_before is None:
            removed_before = np.zeros_like(requested)
        self.forget_mask = requested & ~removed_before
        self.removed_mask = requested | removed_before
        if not self.forget_mask.any():
            raise ValueError(f"The {self.request.describe()} only names data earlier requests already removed.")
        if self.removed_mask.all():
            raise ValueError(f"The {self.request.describe()} and earlier requests together remove the whole training split.")
        self.forget_rows = np.flatnonzero(self.forget_mask)
        self.retain_rows = np.flatnonzero(~self.removed_mask)
        self.forget_data = eval_loader(config, self.subset(self.forget_rows))
        self.example = next(iter(self.forget_data))[0]
        self.fingerprint = self.fingerprints()
        self.key = config_key(config)
        self.output_dir = config["unlearn_output_dir"]
        self.cache_dir = os.path.join(self.output_dir, "cache")
        self.run_dir = distributed.broadcast_object(
            os.path.join(self.output_dir, f"{config['model']}-{config['dataset']}-{get_local_time()}")
        )
        # The checkpoint each model name was last written to or loaded from (for receipts).
        self.files = {}
        # For a sequential request: the checkpoints of the model the methods start from.
        self.start_files = None
        # Where an interrupted training of a cached model keeps its state (see ``cached``).
        self.resume_dirs = {}
        self.meter = None
        self.logger.info(
            f"{self.request.describe()}: {len(self.forget_rows)} forget and "
            f"{len(self.retain_rows)} retain interactions of {len(self.forget_mask)} in training."
        )

    def check(self, methods):
        """Start-up check that every method can unlearn this model, before anything is trained."""
        model = self.new_model()
        for method in methods:
            method.check(self.config, model, self.example)

    def fingerprints(self):
        """SHA-256 of the split (raw user, item and label of every train/valid/test row, in order), of the
        forget set and of everything removed so far (their sorted raw user:item pairs): equal
        fingerprints, same experiment."""
        return {
            "split_sha256": split_sha256(self.train_data, self.valid_data, self.test_data),
            "forget_sha256": self.rows_sha256(self.forget_rows),
            "removed_sha256": self.rows_sha256(np.flatnonzero(self.removed_mask)),
        }

    def rows_sha256(self, rows):
        return hashlib.sha256("\n".join(sorted(interaction_tokens(self.subset(rows)))).encode()).hexdigest()

    def provenance(self, **extra):
        """What every file this protocol writes records about its origin."""
        return {"model": self.config["model"], "dataset": self.config["dataset"], **self.fingerprint, **extra}

    def subset(self, rows):
        return self.train_dataset.copy(self.train_dataset.inter_feat[rows])

    def subset_loader(self, rows, batch_size=None):
        return train_loader(self.config, self.subset(rows), batch_size)

    def checkpoint_path(self, name):
        return os.path.join(self.run_dir, f"{name}.safetensors")

    def new_model(self, config=None):
        config = config or self.config
        init_seed(config["seed"], config["reproducibility"])
        return get_model(config["model"])(config, self.train_dataset).to(config["device"])

    def train(self, name, train_data, valid_data, config=None):
        """A new model trained with RecBole's trainer (best valid checkpoint, or the last epoch)."""
        config = config or self.config
        model = self.new_model(config)
        trainer = safe_trainer_for(config)(config, model)
        trainer.provenance["split_sha256"] = self.fingerprint["split_sha256"]
        trainer.resume_dir = self.resume_dirs.get(name)
        if trainer.resume_dir:
            trainer.saved_model_file = os.path.join(trainer.resume_dir, "best.safetensors")
            trainer.resume()
        else:
            trainer.saved_model_file = self.checkpoint_path(name)
        self.logger.info(f"Training {name} on {len(train_data._dataset)} interactions")
        trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"])
        load_checkpoint(model, trainer.saved_model_file, config["device"], expect=trainer.provenance)
        self.files[name] = trainer.saved_model_file
        return model

    def cached(self, name, key, build):
        """The model ``build()`` returns, stored under ``key``; with its cost as measured when built.

        An interrupted build resumes from the training state kept in ``cache/partial/`` (its time
        before the interruption is not counted).
        """
        path = self.cache_path(name, key)
        if distributed.on_main(lambda: os.path.isfile(path)):
            self.files[name] = path
            return self.load(name, path, key=key)
        resume_dir = os.path.join(self.cache_dir, "partial", os.path.basename(path).removesuffix(".safetensors"))
        self.resume_dirs[name] = resume_dir
        try:
            with CostMeter() as meter:
                model = build()
        finally:
            del self.resume_dirs[name]
        cost = meter.summary()
        save_checkpoint(model, path, {**self.provenance(name=name, cost=cost), **self.expected(key)})
        if distributed.is_main():
            shutil.rmtree(resume_dir, ignore_errors=True)
        self.files[name] = path
        return model, cost

    def expected(self, key):
        return {"key": key, "dataset": self.config["dataset"], "split_sha256": self.fingerprint["split_sha256"]}

    def load(self, name, path, key=None):
        """A model of this protocol's data read from a cached checkpoint, and its recorded cost."""
        model = self.new_model()
        expect = self.expected(key) if key else {"split_sha256": self.fingerprint["split_sha256"]}
        metadata = load_checkpoint(model, path, self.config["device"], expect=expect)
        self.logger.info(f"Loaded {name} from {path}")
        return model, metadata.get("cost")

    def cache_path(self, name, key):
        return os.path.join(self.cache_dir, f"{self.config['model']}-{name}-{key[:16]}.safetensors")

    def original(self):
        return self.cached("original", self.key, lambda: self.train("original", self.train_data, self.valid_data))

    def reference(self, original):
        key = config_key(self.config, self.fingerprint["removed_sha256"])
        return self.cached("retrain", key, lambda: Retrain.run(self, original))

    def pretrained(self, name, rows, config, valid_data=None):
        """A model trained before the forget request (cached; not counted in the unlearning time)."""
        rows_hash = hashlib.sha256(np.asarray(rows).tobytes()).hexdigest()
        key = config_key(config, name, rows_hash, "early-stopped" if valid_data is not None else "")
        pause = self.meter.paused() if self.meter else contextlib.nullcontext()
        with pause:
            return self.cached(name, key, lambda: self.train(name, self.subset_loader(rows), valid_data, config))[0]

    def unlearn(self, method, original):
        """Run ``method`` from ``original``; the model and its cost."""
        with CostMeter() as meter:
            self.meter = meter
            try:
                model = method.run(self, original)
            finally:
                self.meter = None
        return model, meter.summary()

    def evaluate(self, name, model, cost, reference):
        trainer = safe_trainer_for(self.config)(self.config, model)
        test = trainer.evaluate(self.test_data, load_best_model=False)
        forget = forget_metrics(model, self.forget_data, reference, self.config["LABEL_FIELD"])
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        row = {"method": name}
        row.update({f"test_{metric}": float(value) for metric, value in test.items()})
        row.update({f"forget_{metric}": float(value) for metric, value in forget.items()})
        row.update(
            {
                "unlearn_seconds": cost["seconds"],
                "peak_rss_mib": cost["peak_rss_mib"],
                "trainable_parameters": trainable,
                "trainable_share": trainable / total,
            }
        )
        self.logger.info(f"{name}: {row}")
        return row
