import numpy as np
import torch

from recbole_unlearn.checkpoint import save_checkpoint
from recbole_unlearn.config import config_with
from recbole_unlearn.data.partition import assignment_sha256, check_partition, partition
from recbole_unlearn.model.answer import answer_logits, evaluation_precision, yes_no_logits
from recbole_unlearn.model.llmrec import like_probability
from recbole_unlearn.model.ranking import is_ranking
from recbole_unlearn.unlearn.method import UnlearnMethod


class ShardEnsemble(torch.nn.Module):
    """SISA's predictor: the shard models' answer logits (a ranking model's scores), averaged."""

    def __init__(self, shards):
        super().__init__()
        self.shards = torch.nn.ModuleList(shards)

    @property
    def ITEM_ID(self):  # noqa: N802 (RecBole's name: scoring every item reads the shards' item field)
        return self.shards[0].ITEM_ID

    @property
    def answer_ids(self):
        """The shards' answer-token ids (None for CTR shards, whose answers are already two-way)."""
        return getattr(self.shards[0], "answer_ids", None)

    def evaluation_precision(self):
        return evaluation_precision(self.shards[0])

    def weights(self, interaction):
        """Each shard's weight for each sample, shape [shards, batch]; None: every shard alike."""
        return None

    def combine(self, outputs, interaction):
        """The shards' outputs for ``interaction`` (one per shard, alike in shape), weighed by ``weights``
        (by default their mean)."""
        stacked = torch.stack(outputs)  # [shards, batch, ...]; a full sort's scores come flattened
        weights = self.weights(interaction)
        if weights is None:
            return stacked.mean(0)
        combined = (weights[..., None] * stacked.view(len(outputs), weights.size(1), -1)).sum(0)
        return combined.view(stacked.shape[1:])

    def answer_logits(self, interaction):
        return self.combine([answer_logits(shard, interaction) for shard in self.shards], interaction)

    def yes_no_logits(self, interaction):
        return self.combine([yes_no_logits(shard, interaction) for shard in self.shards], interaction)

    def calculate_loss(self, interaction):
        """The shards' own training losses, averaged: training the ensemble trains each shard on the batch
        (the relearning attack)."""
        return torch.stack([shard.calculate_loss(interaction) for shard in self.shards]).mean()

    def predict(self, interaction):
        if is_ranking(self.shards[0]):
            return self.combine([shard.predict(interaction) for shard in self.shards], interaction)
        with self.evaluation_precision():
            return like_probability(self.yes_no_logits(interaction))

    def full_sort_predict(self, interaction):
        return self.combine([shard.full_sort_predict(interaction) for shard in self.shards], interaction)


class SISA(UnlearnMethod):
    """SISA (Bourtoule et al., 2021): one model per disjoint user shard of the training split.

    Unlearning retrains only the shards that held forget data, on what they retain; the other shards'
    models were trained before the request (cached, not counted in the unlearning time). Continuing a
    SISA run (a sequential request), the untouched shards are that run's. A subclass says how rows are
    assigned to shards (``assignment``) and how the shard models are combined (``ensemble``); its keys are
    ``<name>_n_shards`` and ``<name>_epochs``.
    """

    name = "sisa"
    produces = "shards"

    @classmethod
    def continues_from(cls, previous):
        return previous.produces == cls.produces

    @classmethod
    def adopt_files(cls, protocol, files):
        # A later run keeps the shards this run left where its request does not touch them.
        unlearned = files[-len(cls.file_names(protocol.config)) :]
        protocol.files.update(zip(cls.shard_names(protocol.config), unlearned))

    @classmethod
    def run(cls, protocol, start):
        return cls.ensemble(protocol, cls.shard_models(protocol, start))

    @classmethod
    def ensemble(cls, protocol, shards):
        """The unlearned model made of the shard models: their mean answer."""
        return ShardEnsemble(shards)

    @classmethod
    def shard_models(cls, protocol, start):
        """Each shard's model: retrained on what it retains if the request touched it, else the one trained
        before the request (``start``'s, continuing a run of this method)."""
        config = protocol.config
        shard_config = cls.shard_config(config)
        early_stopped = not config[f"{cls.name}_epochs"]
        shards = cls.assignment(protocol)
        touched = cls.touched_shards(protocol, shards)
        models = []
        for shard, name in enumerate(cls.shard_names(config)):
            in_shard = shards == shard
            if shard in touched:
                rows = np.flatnonzero(in_shard & ~protocol.removed_mask)
                if len(rows):
                    valid_data = protocol.valid_data_of(rows) if early_stopped else None
                    models.append(protocol.train(name, protocol.retained_loader(rows), valid_data, shard_config))
                else:
                    models.append(cls.untrained(protocol, name, protocol.retained_subset(rows)))
            elif isinstance(start, ShardEnsemble):
                models.append(start.shards[shard])
            else:
                rows = np.flatnonzero(in_shard)
                valid_data = protocol.valid_data_of(rows) if early_stopped else None
                models.append(protocol.trained_before_request(name, rows, shard_config, valid_data))
        return models

    @classmethod
    def shard_config(cls, config):
        """How a shard model trains: <name>_epochs, or ~ for the Original's recipe (early stopping on the
        validation rows of the shard's users)."""
        epochs = config[f"{cls.name}_epochs"]
        return config_with(config, epochs=epochs) if epochs else config

    @classmethod
    def untrained(cls, protocol, name, dataset):
        """The model of a shard whose every row is removed: built on its (empty) data, trained on nothing."""
        model = protocol.new_model(cls.shard_config(protocol.config), dataset)
        path = protocol.checkpoint_path(name)
        save_checkpoint(model, path, protocol.provenance(name=name))
        protocol.files[name] = path
        return model

    @classmethod
    def shard_names(cls, config):
        return [f"{cls.name}-shard{shard}" for shard in range(config[f"{cls.name}_n_shards"])]

    @classmethod
    def file_names(cls, config):
        return cls.shard_names(config)

    @classmethod
    def check(cls, config, model, example):
        users = getattr(model, "n_users", None)  # a ranking model's, RecBole's padding id included
        check_partition(
            cls.name,
            cls.partition_kind(config),
            config[f"{cls.name}_n_shards"],
            config[f"{cls.name}_cap"],
            None if users is None else users - 1,
        )

    @classmethod
    def partition_kind(cls, config):
        """How rows go to shards: ``random`` users (SISA's), or balanced clusters of similar ``user``s or
        ``interaction``s (``recbole_unlearn.data.partition``, with the ``<name>_cap``, ``_factors`` and
        ``_kmeans_iterations`` keys)."""
        return "random"

    @classmethod
    def assignment(cls, protocol):
        """Each training row's shard (computed once per request)."""
        config, prefix = protocol.config, cls.name
        kind, shards = cls.partition_kind(config), config[f"{prefix}_n_shards"]
        key = (prefix, kind, shards)
        if key not in protocol.partitions:
            protocol.partitions[key] = partition(
                protocol.train_dataset,
                kind,
                shards,
                config[f"{prefix}_cap"],
                config[f"{prefix}_factors"],
                config[f"{prefix}_kmeans_iterations"],
                config["seed"],
                prefix,
            )
        return protocol.partitions[key]

    @staticmethod
    def touched_shards(protocol, shards):
        """The shards holding forget data: the ones this request retrains."""
        return set(np.unique(shards[protocol.forget_mask]).tolist())

    @classmethod
    def receipt_fields(cls, protocol):
        return {"partition_sha256": assignment_sha256(cls.assignment(protocol))}

    @classmethod
    def rebuilt_files(cls, protocol):
        names = cls.shard_names(protocol.config)
        return [names[shard] for shard in sorted(cls.touched_shards(protocol, cls.assignment(protocol)))]

    @classmethod
    def load(cls, protocol, start, paths):
        return cls.ensemble(protocol, cls.load_shards(protocol, paths))

    @classmethod
    def load_shards(cls, protocol, paths):
        shards, config = cls.assignment(protocol), cls.shard_config(protocol.config)
        return [
            protocol.load(name, path, dataset=cls.shard_data(protocol, shards == shard), config=config)[0]
            for shard, (name, path) in enumerate(zip(cls.shard_names(protocol.config), paths))
        ]

    @staticmethod
    def shard_data(protocol, in_shard):
        """What a shard's model was built on: its retained rows once any request removed some of them
        (it was retrained then, and no later request touched it), else all its rows."""
        if (in_shard & protocol.removed_mask).any():
            return protocol.retained_subset(np.flatnonzero(in_shard & ~protocol.removed_mask))
        return protocol.subset(np.flatnonzero(in_shard))
