"""A relearning attack (Hu et al., ICLR 2025): fine-tune an unlearned model for a few steps on a small
seeded share of the forget set and see how much of the Original's answers come back. Retrain, fine-tuned
the same way, is the reference: any model learns from new data."""

import copy
import itertools

import numpy as np
import torch
from recbole.utils import init_seed

from recbole_unlearn.errors import BadInput

# A generator stream of its own: the attack's share never coincides with another draw of the seed.
RELEARN_STREAM = 2


def check_relearn(config):
    """The attack's settings, checked before anything is trained (BadInput naming the key)."""
    share, steps = config["unlearn_relearn_share"], config["unlearn_relearn_steps"]
    if not (isinstance(share, (int, float)) and 0 < share <= 1):
        raise BadInput(f"unlearn_relearn_share must be in (0, 1], got {share!r}.")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise BadInput(f"unlearn_relearn_steps must be a positive integer, got {steps!r}.")


def relearn_rows(forget_rows, share, seed):
    """A seeded ``share`` of the forget rows (at least one), sorted."""
    count = max(1, int(round(share * len(forget_rows))))
    return np.sort(np.random.default_rng([seed, RELEARN_STREAM]).choice(forget_rows, size=count, replace=False))


def relearned(config, model, loader):
    """A copy of ``model`` with every parameter fine-tuned (an attacker is not bound to an adapter) for
    ``unlearn_relearn_steps`` Adam steps at ``unlearn_relearn_learning_rate`` on ``loader``'s batches,
    cycled; seeded, so every model meets the same batches."""
    steps, learning_rate = config["unlearn_relearn_steps"], config["unlearn_relearn_learning_rate"]
    init_seed(config["seed"], config["reproducibility"])
    attacked = copy.deepcopy(model)
    for parameter in attacked.parameters():
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(attacked.parameters(), lr=learning_rate)
    attacked.train()
    for batch in itertools.islice(itertools.cycle(loader), steps):
        optimizer.zero_grad()
        attacked.calculate_loss(batch.to(config["device"])).backward()
        optimizer.step()
    return attacked.eval()
