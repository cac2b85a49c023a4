"""One pass of a model over each evaluation split, kept for every metric to read.

``collect_outputs`` runs the model once over a split and keeps, per sample, its label, its user, its score
(what the model's ``predict`` gives, so RecBole's evaluator sees the scores its own trainer would) and its
two-way (like, not like) distribution; with a ``retrained`` model, also the per-sample distances between
the two full answer distributions (a vocabulary is too wide to keep). ``Evaluation`` bundles the
outputs of one model with those of the Retrain model and of the Original (the model unlearning starts
from), its cost and the training split's active users; metrics are functions of it
(``recbole_unlearn.evaluation.metrics``).
"""

from dataclasses import dataclass, field

import numpy as np
import torch
from recbole.evaluator import Evaluator
from recbole.evaluator.collector import DataStruct

from recbole_unlearn.batching import restore_order
from recbole_unlearn.config import config_with
from recbole_unlearn.distributed import gather_rows
from recbole_unlearn.evaluation.distances import DISTANCES
from recbole_unlearn.model.answer import answer_logits, evaluation_precision, has_answer_vocabulary, yes_no_within
from recbole_unlearn.model.llmrec import like_probability

# RecBole metrics every row reports (the user's ``metrics`` are added to them).
RECBOLE_METRICS = ("AUC", "LogLoss", "ACC")


@dataclass
class SplitOutputs:
    labels: np.ndarray
    scores: np.ndarray
    yes_no: np.ndarray  # [samples, 2] probabilities of (like, not like), float64
    users: np.ndarray = None  # internal user id per sample
    vocab_distances: dict = field(default_factory=dict)  # name -> per-sample distance to the retrained model
    # The full answer distribution per batch of the loader, kept (within a memory budget) when this is the
    # Retrain model's, so other models' distances to it need no second pass of the Retrain model.
    answers: list = None

    @property
    def like(self):
        """P(like) in float64, from the two-way distribution (``scores`` is the model's own float32)."""
        return self.yes_no[:, 0]


def _probabilities(logits):
    return torch.softmax(logits.double(), dim=-1)


def _forward(model, interaction):
    """One pass: the full answer logits, the (like, not like) logits within them, and the model's score."""
    answers = answer_logits(model, interaction)
    two_way = yes_no_within(model, answers)
    # LLMRec's predict is the softmax of the two-way logits; a CTR model's predict is its own (a cheap pass).
    scores = like_probability(two_way) if has_answer_vocabulary(model) else model.predict(interaction)
    return answers, two_way, scores


@torch.inference_mode()
def collect_outputs(
    model, data, label_field, retrained=None, retrained_answers=None, keep_answers_mib=0, user_field=None
):
    """``model``'s outputs on every sample of ``data`` (an evaluation loader), in dataset order.

    Distances to the Retrain model's full answer distribution come from ``retrained_answers`` (a
    ``SplitOutputs.answers`` of the same loader) or else from running ``retrained`` (which may be
    ``model`` itself). ``keep_answers_mib``: keep this model's answers if they fit in that many MiB.
    ``user_field``: also keep each sample's user.
    In a multi-process run each rank scores its share; the rows are gathered so every rank holds all."""
    model.eval()
    if retrained is not None:
        retrained.eval()
    measures_distance = retrained is not None or retrained_answers is not None
    columns, answers, kept_bytes = {}, [] if keep_answers_mib else None, 0
    # Loaders yield CPU tensors; RecBole's trainers move each batch to the model, as this does.
    device = next(model.parameters()).device
    for index, batch in enumerate(data):
        interaction = batch[0].to(device)
        with evaluation_precision(model):
            full, two_way, scores = _forward(model, interaction)
        row = {"score": scores, "label": interaction[label_field].double(), "yes_no": _probabilities(two_way)}
        if user_field is not None:
            row["user"] = interaction[user_field]
        if measures_distance or answers is not None:
            p = _probabilities(full)
        if measures_distance:
            if retrained_answers is not None:
                q = retrained_answers[index].to(device)
            elif retrained is model:
                q = p
            else:
                with evaluation_precision(retrained):
                    q = _probabilities(answer_logits(retrained, interaction))
            row.update({name: distance(p, q) for name, distance in DISTANCES.items()})
        if answers is not None:
            kept_bytes += p.numel() * p.element_size()
            if kept_bytes <= keep_answers_mib * 2**20:
                answers.append(p)
            else:
                answers = None
        for name, values in row.items():
            columns.setdefault(name, []).append(values)
    order = getattr(data, "order", None)
    columns = {
        name: restore_order(gather_rows(torch.cat(parts), data.sample_size).cpu().numpy(), order)
        for name, parts in columns.items()
    }
    return SplitOutputs(
        labels=columns.pop("label"),
        scores=columns.pop("score"),
        yes_no=columns.pop("yes_no"),
        users=columns.pop("user", None),
        vocab_distances=columns,
        answers=answers,
    )


@dataclass
class Evaluation:
    """What metrics read about one evaluated model: its outputs per split, the Retrain model's and the
    Original's, its cost, and the fairness groups of retained users."""

    config: object
    outputs: dict  # split name -> SplitOutputs
    retrained: dict  # split name -> SplitOutputs of the Retrain model
    original: dict  # split name -> SplitOutputs of the model unlearning starts from
    cost: dict
    trainable_parameters: int
    total_parameters: int
    groups: dict = None  # fairness groups: "active" and "inactive" retained users' internal ids
    relearned: dict = None  # with unlearn_relearn: "forget" -> SplitOutputs of the model after the attack
    shadows: object = None  # with unlearn_mia: ulira, the shadow models' ``Shadows``
    memo: dict = field(default_factory=dict, repr=False)  # what several metrics read, computed once
    _recbole_results: dict = field(default_factory=dict, repr=False)
    family: str = field(default="labeled", init=False)

    def extra_columns(self):
        """The RecBole test metrics the user's ``metrics`` asked for (``test_<key>``)."""
        if "test" not in self.outputs:
            return {}
        return {f"test_{key}": float(value) for key, value in self.recbole("test").items()}

    def recbole(self, split):
        """RecBole's evaluator on ``split`` (AUC, LogLoss, ACC and the user's ``metrics``), computed once."""
        if split not in self._recbole_results:
            metrics = list(dict.fromkeys([*RECBOLE_METRICS, *self.config["metrics"]]))
            struct = DataStruct()
            struct.set("rec.score", torch.from_numpy(self.outputs[split].scores))
            struct.set("data.label", torch.from_numpy(self.outputs[split].labels).float())
            self._recbole_results[split] = Evaluator(config_with(self.config, metrics=metrics)).evaluate(struct)
        return self._recbole_results[split]
