"""Metrics: ACC for RecBole's evaluator; forgetting distances and utility on the forget set.

Every class here is registered as a RecBole metric (``registry.register_metrics``).

Forgetting is judged by how close the unlearned model's answer distribution is to the Retrain
model's, per forget sample, averaged: the true Jensen-Shannon divergence, the L2 distance, and the
symmetric KL ``0.5*KL(p||q) + 0.5*KL(q||p)`` that the official E2URec code computes and the paper reports
under the name "JSD" (we call it ``sym_kl``). Each over the full vocabulary at the answer position and
over the two-way yes/no distribution (for a CTR model both are its two-way (like, not like)
distribution; ``recbole_unlearn.model.answer``).
"""

import numpy as np
import torch
from recbole.evaluator.base_metric import LossMetric
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from recbole_unlearn.distributed import gather_rows
from recbole_unlearn.model.answer import answer_logits, yes_no_logits


class ACC(LossMetric):
    """Accuracy of the labeled predictions at the 0.5 threshold."""

    def calculate_metric(self, dataobject):
        return self.output_metric("acc", dataobject)

    def metric_info(self, preds, trues):
        return accuracy_score(trues, preds >= 0.5)


def kl_divergence(p, q):
    """KL(p || q) per row of two probability tensors (0 * log 0 = 0)."""
    return torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p)).sum(-1)


def js_divergence(p, q):
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def symmetric_kl(p, q):
    return 0.5 * kl_divergence(p, q) + 0.5 * kl_divergence(q, p)


def l2_distance(p, q):
    return torch.linalg.vector_norm(p - q, dim=-1)


DISTANCES = {"jsd": js_divergence, "l2": l2_distance, "sym_kl": symmetric_kl}


def _probabilities(logits):
    return torch.softmax(logits.double(), dim=-1)


@torch.no_grad()
def forget_metrics(model, data, reference=None, label_field="label"):
    """Utility of ``model`` on ``data`` and, with a ``reference`` model, its distances to it.

    In a multi-process run each rank scores its share of ``data``; the rows are gathered so every
    metric covers all samples."""
    model.eval()
    if reference is not None:
        reference.eval()
    columns = {}
    for batch in data:
        interaction = batch[0]
        two_way = _probabilities(yes_no_logits(model, interaction))
        row = {"score": two_way[:, 0], "label": interaction[label_field].double()}
        if reference is not None:
            pairs = {
                "": (_probabilities(answer_logits(model, interaction)),
                     _probabilities(answer_logits(reference, interaction))),
                "_yesno": (two_way, _probabilities(yes_no_logits(reference, interaction))),
            }
            for suffix, (p, q) in pairs.items():
                row.update({name + suffix: distance(p, q) for name, distance in DISTANCES.items()})
        for name, values in row.items():
            columns.setdefault(name, []).append(values)
    columns = {name: gather_rows(torch.cat(parts), data.sample_size).cpu().numpy() for name, parts in columns.items()}
    scores, labels = columns.pop("score"), columns.pop("label")
    result = {
        "auc": roc_auc_score(labels, scores),
        "acc": accuracy_score(labels, scores >= 0.5),
        "logloss": log_loss(labels, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "gold_confidence": float(np.mean(np.where(labels == 1, scores, 1 - scores))),
    }
    result.update({name: float(values.mean()) for name, values in columns.items()})
    return result
