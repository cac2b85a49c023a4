import numpy as np
import torch

from recbole_unlearn.config import config_with
from recbole_unlearn.data.forget import shard_assignment
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

    def answer_logits(self, interaction):
        return torch.stack([answer_logits(shard, interaction) for shard in self.shards]).mean(0)

    def yes_no_logits(self, interaction):
        return torch.stack([yes_no_logits(shard, interaction) for shard in self.shards]).mean(0)

    def calculate_loss(self, interaction):
        """The shards' own training losses, averaged: training the ensemble trains each shard on the batch
        (the relearning attack)."""
        return torch.stack([shard.calculate_loss(interaction) for shard in self.shards]).mean()

    def predict(self, interaction):
        if is_ranking(self.shards[0]):
            return torch.stack([shard.predict(interaction) for shard in self.shards]).mean(0)
        with self.evaluation_precision():
            return like_probability(self.yes_no_logits(interaction))

    def full_sort_predict(self, interaction):
        return torch.stack([shard.full_sort_predict(interaction) for shard in self.shards]).mean(0)


class SISA(UnlearnMethod):
    """SISA (Bourtoule et al., 2021): one model per disjoint user shard of the training split.

    Unlearning retrains only the shards that held forget data, on what they retain; the other shards'
    models were trained before the request (cached, not counted in the unlearning time). Continuing a
    SISA run (a sequential request), the untouched shards are that run's.
    """

    name = "sisa"
    produces = "shards"

    @classmethod
    def continues_from(cls, previous):
        return previous.produces == "shards"

    @classmethod
    def adopt_files(cls, protocol, files):
        # A later SISA run keeps the shards this run left where its request does not touch them.
        names = cls.file_names(protocol.config)
        protocol.files.update(zip(names, files[-len(names) :]))

    @classmethod
    def run(cls, protocol, start):
        config = protocol.config
        # sisa_epochs ~ trains shards with the Original's recipe: its epochs, early stopping on valid.
        epochs = config["sisa_epochs"]
        shard_config = config_with(config, epochs=epochs) if epochs else config
        valid_data = None if epochs else protocol.valid_data
        shards = cls.assignment(protocol)
        touched = cls.touched_shards(protocol, shards)
        models = []
        for shard in range(config["sisa_n_shards"]):
            in_shard = shards == shard
            if shard in touched:
                rows = np.flatnonzero(in_shard & ~protocol.removed_mask)
                models.append(
                    protocol.train(f"sisa-shard{shard}", protocol.retained_loader(rows), valid_data, shard_config)
                )
            elif isinstance(start, ShardEnsemble):
                models.append(start.shards[shard])
            else:
                rows = np.flatnonzero(in_shard)
                models.append(protocol.trained_before_request(f"sisa-shard{shard}", rows, shard_config, valid_data))
        return ShardEnsemble(models)

    @classmethod
    def file_names(cls, config):
        return [f"sisa-shard{shard}" for shard in range(config["sisa_n_shards"])]

    @staticmethod
    def assignment(protocol):
        """Each training row's shard."""
        config = protocol.config
        return shard_assignment(protocol.train_dataset, config["sisa_n_shards"], config["seed"])

    @staticmethod
    def touched_shards(protocol, shards):
        """The shards holding forget data: the ones this request retrains."""
        return set(np.unique(shards[protocol.forget_mask]).tolist())

    @classmethod
    def rebuilt_files(cls, protocol):
        names = cls.file_names(protocol.config)
        return [names[shard] for shard in sorted(cls.touched_shards(protocol, cls.assignment(protocol)))]

    @classmethod
    def load(cls, protocol, start, paths):
        shards = cls.assignment(protocol)
        return ShardEnsemble(
            [
                protocol.load(name, path, dataset=cls.shard_data(protocol, shards == shard))[0]
                for shard, (name, path) in enumerate(zip(cls.file_names(protocol.config), paths))
            ]
        )

    @staticmethod
    def shard_data(protocol, in_shard):
        """What a shard's model was built on: its retained rows once any request removed some of them
        (it was retrained then, and no later request touched it), else all its rows."""
        if (in_shard & protocol.removed_mask).any():
            return protocol.retained_subset(np.flatnonzero(in_shard & ~protocol.removed_mask))
        return protocol.subset(np.flatnonzero(in_shard))
