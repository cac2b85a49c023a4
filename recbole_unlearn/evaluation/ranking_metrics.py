"""Metrics of ranking models (registered in ``recbole_unlearn.registry``), each a function of a
``RankingEvaluation``: utility from RecBole's full-sort evaluator, forgetting on the forget queries
(``recbole_unlearn.evaluation.ranking``), fairness on test.

K is the largest of RecBole's ``topk`` throughout.
"""

from dataclasses import dataclass, field
from logging import getLogger

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from recbole_unlearn.evaluation.fairness import group_value, retained_users
from recbole_unlearn.evaluation.labeled_metrics import SIGNIFICANCE
from recbole_unlearn.evaluation.ranking import largest_k


@dataclass
class RankingEvaluation:
    """What ranking metrics read about one evaluated model: its ``RankingOutputs``, the Retrain model's
    and the Original's, its cost and the fairness groups of retained users."""

    config: object
    outputs: object  # RankingOutputs
    retrained: object
    original: object
    cost: dict
    trainable_parameters: int
    total_parameters: int
    groups: dict = None  # fairness groups: "active" and "inactive" retained users' internal ids
    family: str = field(default="ranking", init=False)

    def extra_columns(self):
        """Every RecBole metric at every K, on valid and test (``test_ndcg@10``, ...)."""
        return {
            f"{split}_{key}": value for split, results in self.outputs.utility.items() for key, value in results.items()
        }


def utility(split, name):
    """RecBole's ``name`` (e.g. ``ndcg``) at the largest K on ``split``."""
    return lambda evaluation: evaluation.outputs.utility[split][f"{name}@{largest_k(evaluation.config)}"]


def forget_exposure(evaluation):
    """Residual exposure: the share of the forgotten interactions that are in their query's top-K (a
    forgotten user's top-K over the items not retained, or a forgotten sample's top-K)."""
    outputs = evaluation.outputs
    return outputs.hits / outputs.targets


def jaccard_overlaps(lists, reference):
    """Each query's Jaccard overlap of its top-K list in ``lists`` with the one in ``reference``."""
    return np.array([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(lists, reference)])


def topk_overlap(outputs, retrained):
    """Mean Jaccard overlap of each forget query's top-K with the Retrain model's."""
    return float(np.mean(jaccard_overlaps(outputs.topk, retrained.topk)))


def forget_gap_signal_p_topk(evaluation):
    """One-sided Welch t-test p-value that the Original's top-K lists are farther from Retrain's (1 -
    Jaccard) on the forget queries than on the holdout queries (users with nothing forgotten): small =
    the Original holds something of the forget data that Retrain lacks; large = nothing to close. NaN
    without two holdout queries (a request touching nearly every user)."""
    original, retrained = evaluation.original, evaluation.retrained
    if original.holdout_topk is None or len(original.holdout_topk) < 2:
        return float("nan")
    forget = 1 - jaccard_overlaps(original.topk, retrained.topk)
    holdout = 1 - jaccard_overlaps(original.holdout_topk, retrained.holdout_topk)
    return float(stats.ttest_ind(forget, holdout, equal_var=False, alternative="greater").pvalue)


def forget_topk_overlap(evaluation):
    return topk_overlap(evaluation.outputs, evaluation.retrained)


def forget_catalogue_jsd(evaluation):
    """Mean Jensen-Shannon divergence of each forget query's catalogue softmax to the Retrain model's."""
    return float(evaluation.outputs.distances["jsd"].mean())


def forget_topk_distance(evaluation):
    """``1 - forget_topk_overlap``: the top-K distance gap closed is linear in."""
    return 1 - forget_topk_overlap(evaluation)


def forget_gap_closed_topk(evaluation):
    """``1 - d(model, Retrain) / d(Original, Retrain)`` for the top-K distance ``1 - overlap``, a linear
    scale: 1 = the Retrain model's top-K lists, 0 = no closer than not unlearning, negative = farther.
    NaN (logged) when the signal check finds the Original no farther from Retrain on the forget queries
    than on the holdout queries."""
    p_value = forget_gap_signal_p_topk(evaluation)
    if p_value >= SIGNIFICANCE:
        getLogger().warning(
            "forget_gap_closed_topk is NaN (no signal): the Original's top-K lists are no farther from Retrain's "
            f"on the forget queries than on the holdout queries (one-sided Welch t-test p = {p_value:.3g})."
        )
        return float("nan")
    gap = 1 - topk_overlap(evaluation.original, evaluation.retrained)
    if gap == 0:
        getLogger().warning("forget_gap_closed_topk is NaN: the Original and Retrain give the same top-K lists.")
        return float("nan")
    return 1 - (1 - forget_topk_overlap(evaluation)) / gap


def score_mia_auc(outputs):
    """Membership inference on scores: the AUC of telling the forgotten interactions (members) from as
    many items the same users never interacted with (non-members) by the model's score; 1 = the forget
    data looks trained on, 0.5 = indistinguishable."""
    members, non_members = outputs.member_scores, outputs.non_member_scores
    is_member = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    return float(roc_auc_score(is_member, np.r_[members, non_members]))


def forget_score_mia_auc(evaluation):
    return score_mia_auc(evaluation.outputs)


def forget_score_privleak(evaluation):
    """open-unlearning's privleak on ``score_mia_auc``: 0 = as private as the Retrain model, negative = the
    forget data looks more trained on than in Retrain."""
    retrained = 1 - score_mia_auc(evaluation.retrained)
    if retrained == 0:
        return float("nan")
    return ((1 - forget_score_mia_auc(evaluation)) - retrained) / retrained * 100


def group_ndcg(evaluation, group):
    """The mean per-user test NDCG@K of a fairness group of retained users (``active`` or ``inactive``) and
    its number of test users; NaN (logged) below ``unlearn_fairness_min_users`` users."""
    outputs = evaluation.outputs
    chosen = np.isin(outputs.test_users, evaluation.groups[group])
    return group_value(evaluation, group, outputs.test_ndcg[chosen], "test NDCG"), int(chosen.sum())


def fairness_ndcg(group, size=False):
    """A fairness group's mean per-user test NDCG@K, or (``size``) its number of test users."""
    return lambda evaluation: group_ndcg(evaluation, group)[1 if size else 0]


def fairness_gap_ndcg(evaluation):
    """CURE4Rec's A-IGF on NDCG: the active group's mean per-user test NDCG@K minus the inactive group's."""
    return group_ndcg(evaluation, "active")[0] - group_ndcg(evaluation, "inactive")[0]


def test_ndcg_retained(evaluation):
    """Mean per-user test NDCG@K over users who keep training data (forgotten users left out)."""
    outputs = evaluation.outputs
    return float(outputs.test_ndcg[np.isin(outputs.test_users, retained_users(evaluation))].mean())
