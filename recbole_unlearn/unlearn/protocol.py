"""One unlearning experiment's steps: data and forget request -> Original -> Retrain -> a method ->
evaluation. The Original and Retrain models (and SISA's shards trained before the request) come from the
``ModelCache``; the order of the steps is ``recbole_unlearn.quick_start``'s.

A ranking model (general or sequential) is built on the data it is trained on (a graph model's graph is
data: LightGCN's holds every training interaction), so every model after the request, fine-tuned ones
included, holds only the retained data; its evaluation is ``recbole_unlearn.evaluation.ranking``'s.

Longer than 250 lines: every step reads the request's masks, the splits and the cache held here.
"""

import functools
import hashlib
import os
from logging import getLogger

import numpy as np
from recbole.data import create_dataset, data_preparation
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import get_local_time, get_model, init_seed

from recbole_unlearn import distributed
from recbole_unlearn.checkpoint import load_checkpoint
from recbole_unlearn.data.fingerprints import split_sha256, tokens_sha256
from recbole_unlearn.data.forget import ForgetRequest
from recbole_unlearn.data.groups import fairness_groups
from recbole_unlearn.data.loaders import train_loader, users_eval_loader
from recbole_unlearn.data.sequences import check_no_emptied_sequence, is_sequential, retained_samples
from recbole_unlearn.evaluation.cost import CostMeter, add_to_summary
from recbole_unlearn.evaluation.ranking import ForgetQueries
from recbole_unlearn.model.ranking import is_ranking
from recbole_unlearn.trainer import safe_trainer_for
from recbole_unlearn.unlearn.cache import ModelCache, config_key
from recbole_unlearn.unlearn.evaluation_steps import ProtocolEvaluation
from recbole_unlearn.unlearn.method import METHODS, applicable, hyperparameters


class UnlearnProtocol(ProtocolEvaluation):
    def __init__(self, config, before=None, request=None):
        """``before``: the protocol of the earlier request this one follows (sequential requests); this
        request forgets what it adds, and the retained data excludes both. ``request``: the forget request
        (default: the configured one)."""
        self.config = config
        self.logger = getLogger()
        # A random split (RecBole's order RO: BPR, LightGCN, ...) shuffles with the global generators:
        # seeded here, the split depends on the configuration only, also where a receipt is rebuilt.
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        self.train_data, self.valid_data, self.test_data = data_preparation(config, dataset)
        self.train_dataset = self.train_data._dataset
        self.ranking = is_ranking(get_model(config["model"]))
        self.request = request or ForgetRequest.from_config(config)
        if not self.ranking:
            self.hold_out(before)
        self.forget_mask, self.removed_mask = self.request.masks_after(
            self.train_dataset, before.removed_mask if before else None
        )
        self.forget_rows = np.flatnonzero(self.forget_mask)
        self.retain_rows = np.flatnonzero(~self.removed_mask)
        if is_sequential(self.train_dataset):
            check_no_emptied_sequence(self.train_dataset, self.forget_mask, self.removed_mask, self.request)
        # An item-level request (this one or an earlier one) removes its items from the history-only
        # first position of every sequence.
        self.removed_first_items = np.union1d(
            before.removed_first_items if before else [],
            self.train_dataset.inter_feat[self.train_dataset.iid_field].numpy()[self.forget_rows]
            if self.request.level == "item"
            else [],
        ).astype(np.int64)
        if self.ranking:
            self.example = next(iter(self.forget_loader())).to(config["device"])
            datasets = [data._dataset for data in (self.train_data, self.valid_data, self.test_data)]
            self.queries = ForgetQueries.build(
                config, self.train_dataset, self.forget_rows, self.removed_mask, datasets, config["seed"]
            )
        else:
            self.labeled_evaluation_data()
        self.fairness_groups = fairness_groups(
            self.train_dataset, ~self.removed_mask, config["unlearn_active_user_share"]
        )
        self.fingerprints = {
            "split_sha256": split_sha256(self.train_data, self.valid_data, self.test_data),
            "forget_sha256": self.rows_sha256(self.forget_rows),
            "removed_sha256": self.rows_sha256(np.flatnonzero(self.removed_mask)),
        }
        output_dir = config["unlearn_output_dir"]
        self.cache = ModelCache(os.path.join(output_dir, "cache"), config["model"])
        # Seeds of one run may start within the same second: their folders name them.
        suffix = f"-seed{config['seed']}" if config["unlearn_seeds"] else ""
        self.run_dir = distributed.broadcast_object(
            os.path.join(output_dir, f"{config['model']}-{config['dataset']}-{get_local_time()}{suffix}")
        )
        self.partitions = {}  # each sharded method's shard of every training row, computed once
        # The checkpoint each model name was last written to or loaded from (for receipts).
        self.files = {}
        # For a sequential request: the checkpoints of the model the methods start from.
        self.start_files = None
        self.logger.info(
            f"{self.request.describe()}: {len(self.forget_rows)} forget and "
            f"{len(self.retain_rows)} retain interactions of {len(self.forget_mask)} in training."
        )

    def check(self, methods):
        """The ``methods`` that can unlearn this model, checked before anything is trained (``applicable``)."""
        model = self.new_model()
        return applicable(self.config, methods, lambda method: method.check(self.config, model, self.example))

    def rows_sha256(self, rows):
        """SHA-256 of the sorted raw user:item:label of some training rows."""
        return tokens_sha256(self.subset(rows))

    def provenance(self, **extra):
        """What every file this protocol writes records about its origin (a method's file: also its
        hyper-parameters, so a checkpoint is never read back under other ones)."""
        method = {"hyperparameters": hyperparameters(self.config, extra["method"])} if "method" in extra else {}
        return {
            "model": self.config["model"],
            "dataset": self.config["dataset"],
            **self.fingerprints,
            **extra,
            **method,
        }

    def subset(self, rows):
        """Training rows as they are (a forgotten sample with the history it was trained on)."""
        return self.train_dataset.copy(self.train_dataset.inter_feat[rows])

    def retained_subset(self, rows):
        """Retained training rows with nothing removed in them: a sequential sample's history rebuilt
        without the removed interactions (``recbole_unlearn.data.sequences``)."""
        if is_sequential(self.train_dataset):
            return retained_samples(self.train_dataset, rows, self.removed_mask, self.removed_first_items)
        return self.subset(rows)

    def subset_loader(self, rows, batch_size=None):
        """Training batches of rows as they were before the request (SISA's shards trained before it)."""
        return train_loader(self.config, self.subset(rows), batch_size)

    @functools.cached_property
    def retained_dataset(self):
        """Every retained training row (``retained_subset``): Retrain's training data."""
        return self.retained_subset(self.retain_rows)

    def retained_loader(self, rows, batch_size=None):
        """Training batches of retained rows; sampled negatives avoid each user's retained items only."""
        dataset = self.retained_dataset if rows is self.retain_rows else self.retained_subset(rows)
        return train_loader(self.config, dataset, batch_size, seen=self.retained_dataset)

    def forget_loader(self, batch_size=None):
        """Training batches of the forget rows; sampled negatives avoid each user's training items."""
        return train_loader(self.config, self.subset(self.forget_rows), batch_size, seen=self.train_dataset)

    def valid_data_of(self, rows):
        """A shard model's early-stopping data. A ranking model's: the validation rows of the users holding
        training ``rows`` (its user embeddings know nothing of the other users, and scoring them would cost
        the whole split's full sort per epoch), or the whole split where those users have none. A labeled
        model's: the whole split, as for the Original (its features carry over to other users, and a
        chronological split gives most validation rows to users without training rows)."""
        if not self.ranking:
            return self.valid_data
        users = np.unique(self.train_dataset.inter_feat[self.train_dataset.uid_field].numpy()[rows])
        own = users_eval_loader(self.config, self.valid_data, users)
        if own is None:
            self.logger.warning("No validation rows for a shard's users: it early-stops on the whole split.")
            return self.valid_data
        return own

    def checkpoint_path(self, name):
        return os.path.join(self.run_dir, f"{name}.safetensors")

    def new_model(self, config=None, dataset=None):
        """A new model of ``dataset`` (a ranking model's data; default: the training split)."""
        config = config or self.config
        init_seed(config["seed"], config["reproducibility"])
        dataset = dataset if dataset is not None and self.ranking else self.train_dataset
        return get_model(config["model"])(config, dataset).to(config["device"])

    def on_retained_data(self, model):
        """``model``'s weights in a model built on the retained data (a ranking model's graph without the
        removed interactions); ``model`` itself for other models and shard ensembles (built per shard)."""
        if not self.ranking or not isinstance(model, AbstractRecommender):
            return model
        rebuilt = self.new_model(dataset=self.retained_dataset)
        rebuilt.load_state_dict(model.state_dict())
        return rebuilt

    def train(self, name, train_data, valid_data, config=None):
        """A new model trained with RecBole's trainer (best valid checkpoint, or the last epoch)."""
        config = config or self.config
        model = self.new_model(config, train_data._dataset)
        trainer = safe_trainer_for(config)(config, model)
        trainer.provenance["split_sha256"] = self.fingerprints["split_sha256"]
        trainer.resume_dir, key = self.cache.building_state(name)
        if trainer.resume_dir:
            # The cache key names the model (it leaves out the forget request, the methods and the seed
            # list): any run with that key resumes the state, so the state is checked against the key.
            del trainer.provenance["config_sha256"]
            trainer.provenance["key"] = key
            trainer.saved_model_file = os.path.join(trainer.resume_dir, "best.safetensors")
            trainer.resume()
        else:
            trainer.saved_model_file = self.checkpoint_path(name)
        self.logger.info(f"Training {name} on {len(train_data._dataset)} interactions")
        trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"])
        add_to_summary("seconds_to_best", trainer.training_seconds_to_best)
        add_to_summary("models_trained", 1)
        load_checkpoint(model, trainer.saved_model_file, config["device"], expect=trainer.provenance)
        self.files[name] = trainer.saved_model_file
        return model

    def cached(self, name, key, build, dataset=None, config=None):
        """The model ``build()`` returns, kept in the cache under ``key``, and its cost when built
        (``dataset``, ``config``: what the model is built on and with, as ``load``'s)."""
        expected = self.expected(key)
        model, cost, path = self.cache.get(
            name,
            key,
            build,
            lambda path: self.load(name, path, expected, dataset, config),
            {**self.provenance(name=name), **expected},
        )
        self.files[name] = path
        return model, cost

    def key(self, *extra, config=None):
        """``config_key`` of this protocol's data and ``config`` (its own by default)."""
        return config_key(config or self.config, self.fingerprints["split_sha256"], *extra)

    def expected(self, key):
        return {"key": key, "dataset": self.config["dataset"], "split_sha256": self.fingerprints["split_sha256"]}

    def load(self, name, path, expected=None, dataset=None, config=None):
        """A model built with ``config`` (default: this protocol's) from a checkpoint, and its recorded cost;
        a ranking model on ``dataset`` (default: the training split for the Original, else retained data)."""
        if dataset is None:
            dataset = self.train_dataset if name in ("original", "previous") else self.retained_dataset
        model = self.new_model(config, dataset=dataset)
        expect = expected or {"split_sha256": self.fingerprints["split_sha256"]}
        metadata = load_checkpoint(model, path, self.config["device"], expect=expect)
        self.logger.info(f"Loaded {name} from {path}")
        return model, metadata.get("cost")

    def original(self):
        """The Original: trained on the whole training split (cached)."""
        return self.cached("original", self.key(), lambda: self.train("original", self.train_data, self.valid_data))

    def retrain(self, start):
        """The Retrain model: trained from scratch without everything removed so far (cached)."""
        retrain = next(method for method in METHODS.values() if method.is_retrain)
        key = self.key(self.fingerprints["removed_sha256"])
        return self.cached(retrain.name, key, lambda: retrain.run(self, start), self.retained_dataset)

    def trained_before_request(self, name, rows, config, valid_data=None):
        """A model of part of the training split, trained before any request (cached; a method that
        asks for it is not charged for its training)."""
        rows_hash = hashlib.sha256(np.asarray(rows).tobytes()).hexdigest()
        key = self.key(name, rows_hash, "early-stopped" if valid_data is not None else "", config=config)
        build = lambda: self.train(name, self.subset_loader(rows), valid_data, config)  # noqa: E731
        return self.cached(name, key, build, self.subset(rows), config)[0]

    def unlearn(self, method, start):
        """Run ``method`` from ``start``, seeded as a new model is (what ran before cannot change its draws)."""
        start = self.on_retained_data(start)
        init_seed(self.config["seed"], self.config["reproducibility"])
        with CostMeter() as meter:
            model = method.run(self, start)
        return model, meter.summary()
