"""Distances between answer distributions, per row of two probability tensors.

The symmetric KL ``0.5*KL(p||q) + 0.5*KL(q||p)`` is what the official E2URec code computes and the
paper reports under the name "JSD"; we call it ``sym_kl`` and keep ``jsd`` for the true Jensen-Shannon
divergence.
"""

import torch


def kl_divergence(p, q):
    """KL(p || q) per row (0 * log 0 = 0)."""
    return torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p)).sum(-1)


def js_divergence(p, q):
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def symmetric_kl(p, q):
    return 0.5 * kl_divergence(p, q) + 0.5 * kl_divergence(q, p)


def l2_distance(p, q):
    return torch.linalg.vector_norm(p - q, dim=-1)


DISTANCES = {"jsd": js_divergence, "l2": l2_distance, "sym_kl": symmetric_kl}
