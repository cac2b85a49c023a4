"""What CURE4Rec's fairness metrics share across model families: the retained users, a per-user test
measure averaged over a group, and the threshold below which a group's value is NaN."""

from logging import getLogger

import numpy as np
import pandas as pd


def retained_users(evaluation):
    return np.union1d(evaluation.groups["active"], evaluation.groups["inactive"])


def group_value(evaluation, group, per_user_values, measure):
    """The mean of a group's per-user values; NaN (logged) below ``unlearn_fairness_min_users`` users."""
    minimum = evaluation.config["unlearn_fairness_min_users"]
    if len(per_user_values) < minimum:
        getLogger().warning(
            f"The {group} group's {measure} is NaN: {len(per_user_values)} users have a per-user value, "
            f"fewer than unlearn_fairness_min_users = {minimum}."
        )
        return float("nan")
    return float(np.mean(per_user_values))


def per_user_auc(users, labels, scores):
    """Each user's AUC (Mann-Whitney with average ranks for ties, as ``roc_auc_score``) over their rows, for
    users with both classes: a frame of ``auc``, ``rows`` and ``positives`` per user."""
    frame = pd.DataFrame({"user": users, "positive": (labels > 0.5).astype(float), "score": scores})
    frame["positive_rank"] = frame.groupby("user")["score"].rank() * frame["positive"]
    per_user = frame.groupby("user").agg(
        rows=("positive", "size"), positives=("positive", "sum"), rank_sum=("positive_rank", "sum")
    )
    per_user = per_user[(per_user.positives > 0) & (per_user.positives < per_user.rows)]
    negatives = per_user.rows - per_user.positives
    per_user["auc"] = (per_user.rank_sum - per_user.positives * (per_user.positives + 1) / 2) / (
        per_user.positives * negatives
    )
    return per_user
