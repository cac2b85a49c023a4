"""U-LiRA's shadow models (Hayes et al., SaTML 2025), for per-example membership inference
(``unlearn_mia: ulira``).

Each of ``unlearn_mia_shadows`` shadows is trained from scratch with the Original's recipe on the retained
data plus a seeded random half of the candidates: the forget set (members of the Original) and the
holdout (never trained on). Per candidate, the shadows that trained on it and those that did not give
two distributions of the model's confidence in the true answer; the attack asks which one an evaluated
model's confidence belongs to (``recbole_unlearn.evaluation.labeled_metrics``). Shadows are cached by
what determines them, like Retrain.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
from recbole.data.interaction import cat_interactions

from recbole_unlearn.data.loaders import train_loader
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.labeled_metrics import confidence

# A generator stream of its own: each shadow's half never coincides with another draw of the seed.
SHADOW_STREAM = 3


@dataclass
class Shadows:
    trained_on: np.ndarray  # [shadows, candidates] bool: the shadow trained on the candidate
    confidence: np.ndarray  # [shadows, candidates] logit of the shadow's P(true answer) on the candidate


def check_shadows(config):
    shadows = config["unlearn_mia_shadows"]
    if not isinstance(shadows, int) or isinstance(shadows, bool) or shadows < 2:
        raise BadInput(f"unlearn_mia_shadows must be an integer of at least 2 (one in, one out), got {shadows!r}.")


def train_shadows(protocol, outputs_of):
    """The shadows of ``protocol``'s candidates (its forget rows, then its holdout), each trained (or loaded
    from the cache) and scored by ``outputs_of(model)`` (its outputs on the forget set and the holdout)."""
    config = protocol.config
    forget, holdout = protocol.subset(protocol.forget_rows), protocol.holdout_dataset
    retained = protocol.subset(np.flatnonzero(~protocol.removed_mask)).inter_feat
    trained_on, confidences = [], []
    for index in range(config["unlearn_mia_shadows"]):
        chosen = np.random.default_rng([config["seed"], SHADOW_STREAM, index]).random(len(forget) + len(holdout)) < 0.5
        parts = [retained, forget.inter_feat[chosen[: len(forget)]], holdout.inter_feat[chosen[len(forget) :]]]
        outputs = outputs_of(
            shadow_model(protocol, index, chosen, protocol.train_dataset.copy(cat_interactions(parts)))
        )
        trained_on.append(chosen)
        confidences.append(np.r_[confidence(outputs["forget"]), confidence(outputs["holdout"])])
    return Shadows(np.array(trained_on), np.array(confidences))


def shadow_model(protocol, index, chosen, dataset):
    """Shadow ``index``, trained on ``dataset`` with the Original's recipe (cached under its candidates)."""
    name = f"shadow{index}"
    key = protocol.key(name, protocol.fingerprints["removed_sha256"], hashlib.sha256(chosen.tobytes()).hexdigest())
    build = lambda: protocol.train(name, train_loader(protocol.config, dataset), protocol.valid_data)  # noqa: E731
    return protocol.cached(name, key, build)[0]
