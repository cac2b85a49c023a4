"""A sample's representation inside one RecBole model: what RecEraser's attention reads from each shard
model to weigh its answer (``recbole_unlearn.unlearn.methods.receraser``).

- A general model (BPR, NeuMF, LightGCN, ...): the user's rows of its user embedding tables (every
  ``nn.Embedding`` with one row per user; LightGCN's before propagation).
- A sequential model (SASRec, GRU4Rec, ...): its ``forward`` output for the sample's history.
- A context-aware (CTR) model: its embeddings of the sample's fields, side by side.

A ranking model's representation is the user's (or the history's) alone, so one weight per shard scores
every item of the catalogue, as RecEraser's user-side attention does.
"""

import torch
from recbole.utils import ModelType

from recbole_unlearn.errors import NotApplicable
from recbole_unlearn.model.ranking import is_ranking


def user_tables(model):
    """``model``'s embedding tables with one row per user."""
    return [
        module
        for module in model.modules()
        if isinstance(module, torch.nn.Embedding) and module.num_embeddings == getattr(model, "n_users", None)
    ]


def sample_representation(model, interaction):
    """Shape [batch, width]: the representation of each sample of ``interaction`` in ``model``."""
    if is_ranking(model):
        if model.type == ModelType.SEQUENTIAL:
            return model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        tables = user_tables(model)
        if not tables:
            raise NotApplicable(f"{type(model).__name__} has no user embedding table for RecEraser's attention")
        return torch.cat([table(interaction[model.USER_ID]) for table in tables], dim=-1)
    if hasattr(model, "concat_embed_input_fields") and not hasattr(model, "answer_logits"):
        return model.concat_embed_input_fields(interaction).flatten(1)
    raise NotApplicable(
        f"{type(model).__name__} has no field embeddings for RecEraser's attention (a language model: use apa)"
    )
