"""APA (Hu et al., "Exact and Efficient Unlearning for Large Language Model-based Recommendation", arXiv
2404.10327, TKDE 2025): adapter partition and aggregation for an LLM recommender.

The training users are split into balanced shards of similar users (``recbole_unlearn.data.partition``);
each shard trains its own peft LoRA adapter on the frozen language model as LLMRec builds it before any
recommendation tuning (``llm_lora_r``). A sample's answer weighs the shards' answers by the similarity
of its user to each shard: ``w_k(u) = softmax_k(-||f_u - c_k||^2 / (T m))``, with f_u the user's SVD
factors from the retained data alone (zero for a forgotten user), c_k the mean of shard k's retained
users' factors and m the median squared distance (``apa_aggregation: similarity``), or equally
(``uniform``). Unlearning retrains the adapters of the shards that held forget data. APA aggregates the
adapters' weights per sample and clusters the LLM's representations of the samples; weighing the
adapters' answers and clustering SVD factors are ours.
"""

import numpy as np
import torch

from recbole_unlearn.config import config_with
from recbole_unlearn.data.partition import svd_projection, user_item_matrix
from recbole_unlearn.errors import BadInput, NotApplicable
from recbole_unlearn.model.answer import has_answer_vocabulary
from recbole_unlearn.unlearn.methods.sisa import SISA, ShardEnsemble

AGGREGATIONS = ("similarity", "uniform")


class UserWeightedShardEnsemble(ShardEnsemble):
    """The shards' answers weighed per sample by a fixed table of each user's weight on each shard."""

    def __init__(self, shards, user_weights, user_field):
        super().__init__(shards)
        self.register_buffer("user_weights", user_weights, persistent=False)  # [users, shards]
        self.user_field = user_field

    def weights(self, interaction):
        return self.user_weights[interaction[self.user_field]].T


class APA(SISA):
    name = "apa"
    produces = "adapter shards"

    @classmethod
    def check(cls, config, model, example):
        if not has_answer_vocabulary(model):
            raise NotApplicable(
                f"APA trains LoRA adapters of a language model, and {type(model).__name__} is not one (use receraser)"
            )
        super().check(config, model, example)
        if config["apa_aggregation"] not in AGGREGATIONS:
            raise BadInput(f"apa_aggregation must be one of {list(AGGREGATIONS)}, got {config['apa_aggregation']!r}.")
        if not config["apa_temperature"] > 0:
            raise BadInput(f"apa_temperature must be positive, got {config['apa_temperature']}.")
        if config["apa_lora_r"] < 1:
            raise BadInput(f"apa_lora_r must be a positive whole number, got {config['apa_lora_r']}.")

    @classmethod
    def partition_kind(cls, config):
        return "user"

    @classmethod
    def shard_config(cls, config):
        return config_with(
            super().shard_config(config),
            llm_lora_r=config["apa_lora_r"],
            llm_lora_alpha=config["apa_lora_alpha"],
            llm_lora_dropout=config["apa_lora_dropout"],
            learning_rate=config["apa_learning_rate"],
        )

    @classmethod
    def ensemble(cls, protocol, shards):
        config = protocol.config
        if config["apa_aggregation"] == "uniform":
            return ShardEnsemble(shards)
        weights = torch.as_tensor(cls.user_weights(protocol), dtype=torch.float32, device=config["device"])
        return UserWeightedShardEnsemble(shards, weights, config["USER_ID_FIELD"])

    @classmethod
    def user_weights(cls, protocol):
        """[users, shards]: each user's softmax weight on each shard, from the retained data only."""
        config, train = protocol.config, protocol.train_dataset
        to_user_factors, _ = svd_projection(user_item_matrix(train), config["apa_factors"], config["seed"])
        retained = protocol.retain_rows
        factors = np.asarray(user_item_matrix(train, retained) @ to_user_factors)
        retained_users = train.inter_feat[train.uid_field].numpy()[retained]
        retained_shards = cls.assignment(protocol)[retained]
        distances = np.full((train.user_num, config["apa_n_shards"]), np.inf)
        for shard in range(config["apa_n_shards"]):
            members = np.unique(retained_users[retained_shards == shard])
            if len(members):  # a shard without a retained user gets no weight
                centroid = factors[members].mean(0)
                distances[:, shard] = ((factors - centroid) ** 2).sum(1)
        scale = config["apa_temperature"] * np.median(distances[np.isfinite(distances)])
        logits = -distances / max(scale, np.finfo(float).tiny)
        logits -= logits.max(1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(1, keepdims=True)
