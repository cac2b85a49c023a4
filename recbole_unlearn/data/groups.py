"""Which samples and users the evaluation sets apart: CURE4Rec's active users (fairness) and the
membership-inference holdout (non-members)."""

import numpy as np

from recbole_unlearn.errors import BadInput


def active_users(train_dataset, share):
    """The ``share`` of training users with the most training interactions (ties: smaller id first), as
    internal ids."""
    if not 0 < share <= 1:
        raise BadInput(f"unlearn_active_user_share must be in (0, 1], got {share!r}.")
    users, counts = np.unique(train_dataset.inter_feat[train_dataset.uid_field].numpy(), return_counts=True)
    count = max(1, int(round(share * len(users))))
    return users[np.lexsort((users, -counts))[:count]]


def holdout_rows(valid_dataset, size, seed):
    """Sorted rows of a seeded sample of ``size`` validation samples (all of them if fewer): data no model
    is trained on."""
    total = len(valid_dataset)
    return np.sort(np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))
