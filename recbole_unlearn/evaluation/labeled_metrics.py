"""Metrics of labeled models (LLMRec and CTR models; registered in ``recbole_unlearn.registry``), each a
function of an ``Evaluation`` (``recbole_unlearn.evaluation.outputs``): utility from RecBole's
evaluator, forgetting on the forget set against the Retrain model and the Original, membership inference
against the holdout, and CURE4Rec's fairness on test.
"""

import warnings
from logging import getLogger

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score, roc_curve

from recbole_unlearn.evaluation.distances import DISTANCES
from recbole_unlearn.evaluation.fairness import group_value, per_user_auc, retained_users

# The level below which a gap between the Original and Retrain counts as a signal.
SIGNIFICANCE = 0.05
# LiRA's confidence scale, away from 0 and 1 (a probability of exactly 0 or 1 has no logit).
CONFIDENCE_EPS = 1e-6


def recbole_metric(split, key):
    """A metric RecBole's evaluator computes on ``split`` (e.g. ``recbole_metric("test", "auc")``)."""
    return lambda evaluation: float(evaluation.recbole(split)[key])


def forget_auc(evaluation):
    forget = evaluation.outputs["forget"]
    return roc_auc_score(forget.labels, forget.like)


def forget_acc(evaluation):
    forget = evaluation.outputs["forget"]
    return accuracy_score(forget.labels, forget.like >= 0.5)


def forget_logloss(evaluation):
    forget = evaluation.outputs["forget"]
    return log_loss(forget.labels, np.clip(forget.like, 1e-15, 1 - 1e-15), labels=[0, 1])


def forget_gold_confidence(evaluation):
    """Mean probability of the true answer on the forget set."""
    return float(np.mean(_true_answer_probability(evaluation.outputs["forget"])))


def vocabulary_distance(name):
    """Mean distance to the Retrain model over the full answer distribution on the forget set."""
    return lambda evaluation: float(evaluation.outputs["forget"].vocab_distances[name].mean())


def per_sample_yes_no_distance(name, outputs, retrained, split="forget"):
    p = torch.from_numpy(outputs[split].yes_no)
    q = torch.from_numpy(retrained[split].yes_no)
    return DISTANCES[name](p, q).numpy()


def mean_yes_no_distance(name, outputs, retrained):
    return float(per_sample_yes_no_distance(name, outputs, retrained).mean())


def yes_no_distance(name):
    """Mean distance to the Retrain model over the two-way (like, not like) distribution on the forget set."""
    return lambda evaluation: mean_yes_no_distance(name, evaluation.outputs, evaluation.retrained)


def _true_answer_probability(outputs):
    return np.where(outputs.labels == 1, outputs.like, 1 - outputs.like)


def mia_auc(outputs, seed):
    """Loss attack (open-unlearning's MIA_LOSS) on the forget set (members) against the holdout sample
    (non-members): the AUC of telling them apart by the loss of the true answer, members labelled 0 as
    open-unlearning does, so 1 = the forget data looks trained on, 0.5 = indistinguishable. A forget set
    larger than the holdout is subsampled (seeded) to its size."""
    members, non_members = outputs["forget"], outputs["holdout"]
    member_losses = -np.log(np.clip(_true_answer_probability(members), 1e-15, 1))
    if len(member_losses) > len(non_members.labels):
        member_losses = np.random.default_rng(seed).choice(member_losses, len(non_members.labels), replace=False)
    non_member_losses = -np.log(np.clip(_true_answer_probability(non_members), 1e-15, 1))
    is_non_member = np.r_[np.zeros(len(member_losses)), np.ones(len(non_member_losses))]
    return float(roc_auc_score(is_non_member, np.r_[member_losses, non_member_losses]))


def forget_mia_auc(evaluation):
    return mia_auc(evaluation.outputs, evaluation.config["seed"])


def forget_privleak(evaluation):
    """open-unlearning's privleak: ``((1 - AUC) - (1 - AUC_retrain)) / (1 - AUC_retrain) * 100`` on the MIA
    AUC. 0 = as private as the Retrain model; negative = the forget data looks more trained on than in
    Retrain (too little forgotten); positive = less (too much: itself a signal of unlearning)."""
    retrained = 1 - mia_auc(evaluation.retrained, evaluation.config["seed"])
    if retrained == 0:
        return float("nan")
    return ((1 - forget_mia_auc(evaluation)) - retrained) / retrained * 100


def forget_gap_signal_p(evaluation):
    """One-sided Welch t-test p-value that the Original is farther from Retrain on the forget set than on
    the holdout (data neither trained on), per sample by the yes/no L2 distance: small = the Original
    holds something of the forget data that Retrain lacks; large = nothing to close (no signal)."""
    if "signal_p" not in evaluation.memo:
        forget, holdout = (
            per_sample_yes_no_distance("l2", evaluation.original, evaluation.retrained, split)
            for split in ("forget", "holdout")
        )
        test = stats.ttest_ind(forget, holdout, equal_var=False, alternative="greater")
        evaluation.memo["signal_p"] = float(test.pvalue)
    return evaluation.memo["signal_p"]


def gap_closed(evaluation, distance, name):
    """``1 - d(model, Retrain) / d(Original, Retrain)``, ``d`` the mean ``distance`` over the forget set; NaN
    (logged) when the Original is no farther from Retrain on the forget set than on the holdout."""
    p_value = forget_gap_signal_p(evaluation)
    if not p_value < SIGNIFICANCE:
        getLogger().warning(
            f"{name} is NaN (no signal): the Original is no farther from Retrain on the forget set than on the "
            f"holdout (one-sided Welch t-test p = {p_value:.3g})."
        )
        return float("nan")
    gap = mean_yes_no_distance(distance, evaluation.original, evaluation.retrained)
    return 1 - mean_yes_no_distance(distance, evaluation.outputs, evaluation.retrained) / gap


def forget_gap_closed(evaluation):
    """Gap closed on the yes/no L2 distance, ``sqrt(2) * |P(like) - P_R(like)|``: linear in the probability
    gap (half-way to Retrain = 0.5). 1 = reached Retrain, 0 = no closer than not unlearning, negative =
    farther than the Original."""
    return gap_closed(evaluation, "l2", "forget_gap_closed")


def forget_gap_closed_jsd(evaluation):
    """Gap closed on the yes/no JSD, which grows with the square of the probability gap (half-way to
    Retrain is about 0.75): the former headline, kept for comparison."""
    return gap_closed(evaluation, "jsd", "forget_gap_closed_jsd")


def test_auc_retained(evaluation):
    """Test AUC over the test rows of users who keep training data (forgotten and cold users left out)."""
    test = evaluation.outputs["test"]
    chosen = np.isin(test.users, retained_users(evaluation))
    return float(roc_auc_score(test.labels[chosen], test.scores[chosen]))


def fairness_group(evaluation, group):
    """CURE4Rec's per-user fairness measure on one group of retained users (``active`` or ``inactive``): the
    mean per-user test AUC over the group's users with both classes in test, and its sizes (those users,
    their test rows and positives). The value is NaN (logged) below ``unlearn_fairness_min_users`` users."""
    key = ("fairness", group)
    if key not in evaluation.memo:
        test = evaluation.outputs["test"]
        chosen = np.isin(test.users, evaluation.groups[group])
        per_user = per_user_auc(test.users[chosen], test.labels[chosen], test.scores[chosen])
        sizes = {"users": len(per_user), "rows": int(per_user.rows.sum()), "positives": int(per_user.positives.sum())}
        value = group_value(evaluation, group, per_user.auc.to_numpy(), "test AUC")
        evaluation.memo[key] = {"value": value, **sizes}
    return evaluation.memo[key]


def fairness(group, key="value"):
    """A fairness group's value or size (``key``: ``value``, ``users``, ``rows``, ``positives``)."""
    return lambda evaluation: fairness_group(evaluation, group)[key]


def fairness_gap(evaluation):
    """CURE4Rec's fairness: the active group's mean per-user test AUC minus the inactive group's."""
    return fairness_group(evaluation, "active")["value"] - fairness_group(evaluation, "inactive")["value"]


def forget_relearn_l2(evaluation):
    """The relearning attack (``unlearn_relearn``): mean yes/no L2 distance to the Original on the forget set
    after a few fine-tuning steps on a share of it; smaller = more of the Original's answers came back."""
    return mean_yes_no_distance("l2", evaluation.relearned, evaluation.original)


def forget_relearn_recovered(evaluation):
    """The share of the model's forget-set distance to the Original that the relearning attack removes,
    ``1 - d(attacked, Original) / d(model, Original)``; NaN for the Original itself."""
    before = mean_yes_no_distance("l2", evaluation.outputs, evaluation.original)
    if before == 0:
        return float("nan")
    return 1 - forget_relearn_l2(evaluation) / before


def confidence(split_outputs):
    """LiRA's per-sample statistic: the logit of the probability of the true answer."""
    true = np.clip(_true_answer_probability(split_outputs), CONFIDENCE_EPS, 1 - CONFIDENCE_EPS)
    return np.log(true) - np.log1p(-true)


def ulira(evaluation):
    """U-LiRA (Hayes et al., SaTML 2025), per example: the likelihood ratio of the model's confidence on each
    candidate under the Gaussian of the shadows that trained on it against that of the shadows that did
    not (per-candidate means, a pooled deviation each, as LiRA with few shadows); the AUC of telling
    forget samples from holdout samples by it, and the TPR at 1% and 0.1% FPR. Candidates without a
    shadow on each side are left out."""
    if "ulira" not in evaluation.memo:
        shadows, outputs = evaluation.shadows, evaluation.outputs
        target = np.r_[confidence(outputs["forget"]), confidence(outputs["holdout"])]
        is_forget = np.r_[np.ones(len(outputs["forget"].labels)), np.zeros(len(outputs["holdout"].labels))]
        scores = np.zeros_like(target)
        for side in (True, False):
            seen = np.where(shadows.trained_on == side, shadows.confidence, np.nan)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a candidate no shadow of this side has
                mean = np.nanmean(seen, axis=0)
            spread = np.nanstd(seen - mean)
            scores += (1 if side else -1) * stats.norm.logpdf(target, mean, spread)
        kept = np.isfinite(scores)
        false_positive, true_positive, _ = roc_curve(is_forget[kept], scores[kept])
        evaluation.memo["ulira"] = {
            "auc": float(roc_auc_score(is_forget[kept], scores[kept])),
            **{rate: float(true_positive[false_positive <= rate].max()) for rate in (0.01, 0.001)},
        }
    return evaluation.memo["ulira"]


def ulira_metric(key):
    """U-LiRA's ``auc``, or its TPR at an FPR of ``key`` (0.01, 0.001)."""
    return lambda evaluation: ulira(evaluation)[key]
