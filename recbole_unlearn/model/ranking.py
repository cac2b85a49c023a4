"""How a RecBole ranking model (general or sequential) answers for one training interaction, in the terms
every method reads through ``recbole_unlearn.model.answer``: logits over outcomes and the true outcome.

The answer is the model's own training objective:

- ``softmax`` (a sequential model trained with cross-entropy, e.g. SASRec, GRU4Rec): a distribution over
  the whole catalogue given the user's history; the true outcome is the target item.
- ``pairwise`` (a model trained with BPR, e.g. BPR, LightGCN, or a sequential model with
  ``loss_type: BPR``): two outcomes, the interacted item ranks above the sampled negative or below it,
  with logits ``(d/2, -d/2)`` for the score difference ``d``; their softmax is ``sigmoid(d)``, BPR's
  likelihood. The true outcome is the first.
- ``pointwise`` (a general model trained on labelled positives and sampled negatives, e.g. NeuMF): two
  outcomes from the logit of ``predict``, as a CTR model's; the true outcome is the sample's label.
"""

import torch
from recbole.data.interaction import Interaction
from recbole.utils import InputType, ModelType

from recbole_unlearn.errors import BadInput

# RecBole's TRADITIONAL models (Pop, ItemKNN, EASE, ...) are general recommenders fitted without gradients.
RANKING_TYPES = (ModelType.GENERAL, ModelType.SEQUENTIAL, ModelType.TRADITIONAL)
# Index of each outcome in a two-way answer (as ``answer.LIKE``, ``answer.DISLIKE``).
ABOVE, BELOW = 0, 1
# torch.logit clamps probabilities to [eps, 1 - eps], so a saturated prediction stays finite.
PROBABILITY_EPS = 1e-6


def is_ranking(model_class):
    """Whether a RecBole model (class or instance) ranks the catalogue (general or sequential)."""
    return getattr(model_class, "type", None) in RANKING_TYPES


def objective(model):
    """``softmax``, ``pairwise`` or ``pointwise``: the training objective a ranking model answers with."""
    loss_type = getattr(model, "loss_type", None)
    if model.type == ModelType.SEQUENTIAL and loss_type == "CE":
        return "softmax"
    if loss_type == "BPR" or model.input_type == InputType.PAIRWISE:
        return "pairwise"
    return "pointwise"


def with_item(model, interaction, item_field):
    """``interaction`` with its item replaced by ``item_field``'s (e.g. the sampled negative)."""
    return Interaction({**interaction.interaction, model.ITEM_ID: interaction[item_field]})


def pointwise_logit(model, interaction):
    """The logit of ``predict``'s probability (a model trained on probabilities, not logits)."""
    return torch.logit(model.predict(interaction), eps=PROBABILITY_EPS)


def ranking_logits(model, interaction):
    """Answer logits, shape [batch, outcomes] (outcomes: the catalogue, or two)."""
    kind = objective(model)
    if kind == "softmax":
        return model.full_sort_predict(interaction).view(len(interaction), -1)
    if kind == "pairwise":
        if model.NEG_ITEM_ID not in interaction:
            raise BadInput(f"{type(model).__name__} answers by BPR: its batches need sampled negatives.")
        half = (model.predict(interaction) - model.predict(with_item(model, interaction, model.NEG_ITEM_ID))) / 2
    else:
        half = pointwise_logit(model, interaction) / 2
    return torch.stack([half, -half], dim=-1)


def ranking_targets(model, interaction, label_field):
    """The index of each sample's true outcome in ``ranking_logits``."""
    kind = objective(model)
    if kind == "softmax":
        return interaction[model.ITEM_ID]
    if kind == "pairwise":
        return torch.full((len(interaction),), ABOVE, dtype=torch.long, device=interaction[model.ITEM_ID].device)
    return torch.where(interaction[label_field] > 0.5, ABOVE, BELOW)


def ranking_flipped(model, interaction, label_field):
    """``interaction`` with the opposite answer (Bad-T's flipped labels), or None for a catalogue answer:
    a pairwise sample swaps its item and its negative, a pointwise one flips its label."""
    kind = objective(model)
    if kind == "softmax":
        return None
    if kind == "pairwise":
        swapped = with_item(model, interaction, model.NEG_ITEM_ID)
        swapped.interaction[model.NEG_ITEM_ID] = interaction[model.ITEM_ID]
        return swapped
    return Interaction({**interaction.interaction, label_field: 1 - interaction[label_field]})
