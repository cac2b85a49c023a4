"""The answer distribution every teacher and forgetting metric uses, for any RecBole model.

A model with ``answer_logits`` (LLMRec, SISA's shard ensemble) answers over its vocabulary at the
answer position. A ranking model (general or sequential) answers with its training objective
(``recbole_unlearn.model.ranking``). A built-in CTR model (LR, FM, DeepFM, ...) answers over two outcomes, (like, not
like), with logits ``(s/2, -s/2)`` for its click logit ``s``: the softmax gives ``sigmoid(s)``, RecBole's
own prediction, and a move of the click logit shows as a rise of one of the two logits, as a language
model's yes/no tokens do, so E2URec's forgetting teacher pushes down whichever the forget data raised.
"""

import contextlib

import torch
from recbole.data.interaction import Interaction

from recbole_unlearn.model.llmrec import IGNORE_INDEX
from recbole_unlearn.model.ranking import (
    is_ranking,
    pointwise_logit,
    ranking_flipped,
    ranking_logits,
    ranking_targets,
)

# Index of each outcome in a two-way distribution, the order of LLMRec's answer_words (yes, no).
LIKE, DISLIKE = 0, 1


def has_answer_vocabulary(model):
    """Whether ``model`` answers over its own vocabulary (a language model), not a CTR click logit."""
    return hasattr(model, "answer_logits")


@contextlib.contextmanager
def in_eval_mode(model):
    """``model`` in eval mode within the block, each module's mode restored after it, so that a probe
    forward leaves the model as it was (in training mode, BatchNorm updates its running statistics on
    every forward, even one without gradients)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.train(training)


def evaluation_precision(model):
    """The context ``model``'s evaluation forwards run in (LLMRec's ``llm_eval_dtype``); none for a CTR model."""
    precision = getattr(model, "evaluation_precision", None)
    return precision() if precision else contextlib.nullcontext()


def click_logit(model, interaction):
    """A CTR model's logit: ``forward`` when it is trained on logits (BCEWithLogitsLoss, as nearly every
    RecBole CTR model), else the logit of ``predict``'s probability."""
    if isinstance(getattr(model, "loss", None), torch.nn.BCEWithLogitsLoss):
        logit = model(interaction)
    else:
        logit = pointwise_logit(model, interaction)
    # One logit per sample, also from a model that keeps a trailing axis (KD_DAGFM's teacher phase).
    return logit.squeeze(-1) if logit.dim() == 2 and logit.size(-1) == 1 else logit


def answer_logits(model, interaction):
    """Full answer-distribution logits, shape [batch, outcomes] (outcomes = vocabulary or 2)."""
    if has_answer_vocabulary(model):
        return model.answer_logits(interaction)
    if is_ranking(model):
        return ranking_logits(model, interaction)
    half = click_logit(model, interaction) / 2
    return torch.stack([half, -half], dim=-1)


def yes_no_logits(model, interaction):
    """Logits of (like, not like), shape [batch, 2]: comparable across every model."""
    if has_answer_vocabulary(model):
        return model.yes_no_logits(interaction)
    return answer_logits(model, interaction)


def yes_no_within(model, logits):
    """The (like, not like) logits within ``answer_logits(model, ...)``'s output (the same for a CTR model)."""
    answer_ids = getattr(model, "answer_ids", None)
    return logits if answer_ids is None else logits[:, answer_ids]


def answer_targets(model, interaction, label_field):
    """The index of each sample's true answer in ``answer_logits``."""
    if has_answer_vocabulary(model):
        return model.answer_token_ids(interaction)
    if is_ranking(model):
        return ranking_targets(model, interaction, label_field)
    return torch.where(interaction[label_field] > 0.5, LIKE, DISLIKE)


def flipped_answers(model, interaction, label_field):
    """``interaction`` with the opposite true answer (flipped labels), or None where an answer has no
    opposite (a ranking model's catalogue answer)."""
    if is_ranking(model):
        return ranking_flipped(model, interaction, label_field)
    return Interaction({**interaction.interaction, label_field: 1 - interaction[label_field]})


def first_answer(model, interaction, label_field):
    """``answer_logits`` and ``answer_targets`` as a one-position ``answer_sequence``."""
    return answer_logits(model, interaction)[:, None, :], answer_targets(model, interaction, label_field)[:, None]


def answer_sequence(model, interaction, label_field):
    """Logits at each position of every sample's true answer, shape [batch, positions, outcomes], and the
    answer's tokens there, shape [batch, positions] (``IGNORE_INDEX`` past a shorter answer). A seq2seq
    LLMRec answers "Yes." / "No." over several tokens; other models answer in one position."""
    if has_answer_vocabulary(model):
        return model.answer_sequence_logits(interaction)
    return first_answer(model, interaction, label_field)


def answer_log_likelihood(model, interaction, label_field):
    """Each sample's log-probability of its true answer (summed over the answer's tokens), and the number
    of those tokens: ``log p(y|x)`` and ``|y|`` of NPO-style losses."""
    logits, targets = answer_sequence(model, interaction, label_field)
    real = targets != IGNORE_INDEX
    token_log_probs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.clamp(min=0)[..., None])
    return torch.where(real, token_log_probs.squeeze(-1), 0.0).sum(dim=1), real.sum(dim=1)
