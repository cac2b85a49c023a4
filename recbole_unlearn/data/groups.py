"""Which users and samples the evaluation sets apart: CURE4Rec's fairness groups, and the
membership-inference holdout (non-members)."""

import numpy as np

from recbole_unlearn.data.forget import level_units
from recbole_unlearn.errors import BadInput

# A generator stream of its own: the holdout's draw never coincides with the forget request's.
HOLDOUT_STREAM = 1


def fairness_groups(train_dataset, retained_mask, share):
    """CURE4Rec's groups among the users who keep training interactions after the request: ``active``, the
    ``share`` with the most retained interactions (ties: smaller id first), and ``inactive``, the others.
    Forgotten users and users with no training interaction (cold users) are in neither. Internal ids."""
    if not 0 < share <= 1:
        raise BadInput(f"unlearn_active_user_share must be in (0, 1], got {share!r}.")
    retained_users = train_dataset.inter_feat[train_dataset.uid_field].numpy()[retained_mask]
    users, counts = np.unique(retained_users, return_counts=True)
    count = max(1, int(round(share * len(users))))
    order = np.lexsort((users, -counts))
    return {"active": np.sort(users[order[:count]]), "inactive": np.sort(users[order[count:]])}


def parse_holdout(value):
    """``unlearn_mia_holdout``: a share in (0, 1) of the training split, or ``valid``."""
    if value == "valid" or (isinstance(value, float) and 0 < value < 1):
        return value
    raise BadInput(
        f"unlearn_mia_holdout must be a share of the training split in (0, 1) (e.g. 0.05) or 'valid', got {value!r}."
    )


def holdout_mask(train_dataset, request, share, seed):
    """Rows of a seeded ``share`` of the training split's units at ``request``'s level (users, items or
    interactions), drawn at random among the units ``request`` does not name: no model trains on them, so
    they are membership inference's non-members from the forget set's population."""
    units = level_units(train_dataset, request.level)
    every_unit = np.unique(units)
    candidates = np.setdiff1d(every_unit, request.explicit_units(train_dataset)) if request.ids else every_unit
    count = int(round(share * len(every_unit)))
    if count == 0 or count >= len(candidates):
        raise BadInput(
            f"unlearn_mia_holdout {share} of {len(every_unit)} training {request.level}s holds "
            f"{count}: it must hold at least one and leave the rest to train on."
        )
    chosen = np.random.default_rng([seed, HOLDOUT_STREAM]).choice(candidates, size=count, replace=False)
    return np.isin(units, chosen)


def valid_holdout_rows(valid_dataset, size, seed):
    """Sorted rows of a seeded sample of ``size`` validation samples (all of them if fewer): the
    ``unlearn_mia_holdout: valid`` option, data no model is trained on but from a later time, and mostly
    from users without training data."""
    total = len(valid_dataset)
    return np.sort(np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))
