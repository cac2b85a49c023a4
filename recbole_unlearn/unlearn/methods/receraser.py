"""RecEraser (Chen et al., "Recommendation Unlearning", WWW 2022): SISA with balanced shards of similar
users (or interactions) and a learned aggregation of the shard models.

The training split is partitioned by ``recbole_unlearn.data.partition`` (balanced k-means, each shard at
most ``receraser_cap`` times the mean size); one model per shard is trained with RecBole's training;
then an attention, trained on retained data only with the shards frozen, weighs the shards' answers per
sample: ``score(x) = sum_k a_k(x) s_k(x)``, ``a_k(x) = softmax_k(h^T tanh(W r_k(x) + b))``, where
``r_k(x)`` is the sample's representation in shard model k (``recbole_unlearn.model.representation``).
Unlearning retrains the shards that held forget data, then the attention. RecEraser attends over the
shards' embeddings and scores the aggregated embeddings; weighing the shards' scores instead serves every
model family with one definition.
"""

import contextlib

import torch
from recbole.utils import ModelType

from recbole_unlearn.checkpoint import load_checkpoint, save_checkpoint
from recbole_unlearn.config import config_with
from recbole_unlearn.errors import BadInput, NotApplicable
from recbole_unlearn.model.answer import answer_targets, in_eval_mode
from recbole_unlearn.model.representation import sample_representation
from recbole_unlearn.trainer import SafeTrainer
from recbole_unlearn.unlearn.methods.sisa import SISA, ShardEnsemble
from recbole_unlearn.unlearn.unlearn_trainer import frozen


class ShardAttention(torch.nn.Module):
    """RecEraser's attention: one weight per shard and sample, from the sample's representation there."""

    def __init__(self, width, attention_size):
        super().__init__()
        self.project = torch.nn.Linear(width, attention_size)
        self.score = torch.nn.Linear(attention_size, 1, bias=False)

    def forward(self, representations):
        """[shards, batch, width] -> weights [shards, batch], summing to 1 over the shards."""
        return torch.softmax(self.score(torch.tanh(self.project(representations))).squeeze(-1), dim=0)


class AttentiveShardEnsemble(ShardEnsemble):
    """The shard models' answers, weighed per sample by ``ShardAttention``."""

    def __init__(self, shards, attention, label_field):
        super().__init__(shards)
        self.attention = attention
        self.label_field = label_field

    def weights(self, interaction):
        return self.attention(torch.stack([sample_representation(shard, interaction) for shard in self.shards]))

    def attention_loss(self, interaction):
        """Cross-entropy of the combined answer: the shards' own objective (``answer_targets``). The shards
        answer in eval mode (no dropout): only the attention trains."""
        targets = answer_targets(self.shards[0], interaction, self.label_field)
        with contextlib.ExitStack() as shards_in_eval_mode:
            for shard in self.shards:
                shards_in_eval_mode.enter_context(in_eval_mode(shard))
            logits = self.answer_logits(interaction)
        return torch.nn.functional.cross_entropy(logits.float(), targets)


class RecEraser(SISA):
    name = "receraser"
    produces = "attentive shards"

    @classmethod
    def check(cls, config, model, example):
        super().check(config, model, example)
        if config["receraser_partition"] == "interaction" and model.type == ModelType.SEQUENTIAL:
            raise NotApplicable(
                "an interaction partition splits a user's sequence across shards, and a sample's history would "
                "carry interactions of other shards"
            )
        sample_representation(model, example)
        size = config["receraser_attention_size"]
        if size is not None and size < 1:
            raise BadInput(f"receraser_attention_size must be a positive whole number, got {size}.")

    @classmethod
    def partition_kind(cls, config):
        return config["receraser_partition"]

    @classmethod
    def file_names(cls, config):
        return [*cls.shard_names(config), f"{cls.name}-attention"]

    @classmethod
    def rebuilt_files(cls, protocol):
        # The attention is trained anew on every request.
        return [*super().rebuilt_files(protocol), f"{cls.name}-attention"]

    @classmethod
    def run(cls, protocol, start):
        ensemble = cls.ensemble(protocol, cls.shard_models(protocol, start))
        config = protocol.config
        # RecBole's loop trains the attention alone: the shards are frozen.
        trainer_config = config_with(
            config,
            epochs=config["receraser_attention_epochs"],
            learning_rate=config["receraser_attention_learning_rate"],
        )
        for shard in ensemble.shards:
            frozen(shard)
        trainer = SafeTrainer(trainer_config, ensemble)
        loader = protocol.retained_loader(protocol.retain_rows)
        for epoch in range(trainer_config["epochs"]):
            trainer._train_epoch(
                loader, epoch, loss_func=ensemble.attention_loss, show_progress=config["show_progress"]
            )
        ensemble.requires_grad_(True)
        path = protocol.checkpoint_path(f"{cls.name}-attention")
        save_checkpoint(ensemble.attention, path, protocol.provenance(method=cls.name, model="ShardAttention"))
        protocol.files[f"{cls.name}-attention"] = path
        return ensemble.eval()

    @classmethod
    def ensemble(cls, protocol, shards):
        config = protocol.config
        width = sample_representation(shards[0], protocol.example).size(-1)
        size = config["receraser_attention_size"] or max(1, width // 2)
        # Seeded: the attention's initial weights depend on the configuration only.
        with torch.random.fork_rng():
            torch.manual_seed(config["seed"])
            attention = ShardAttention(width, size).to(config["device"])
        return AttentiveShardEnsemble(shards, attention, config["LABEL_FIELD"])

    @classmethod
    def load(cls, protocol, start, paths):
        ensemble = cls.ensemble(protocol, cls.load_shards(protocol, paths[:-1]))
        load_checkpoint(
            ensemble.attention,
            paths[-1],
            protocol.config["device"],
            expect=protocol.provenance(method=cls.name, model="ShardAttention"),
        )
        return ensemble.eval()
