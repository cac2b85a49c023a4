"""Results over seeds (summary, claims) and the field's evidence: membership inference, gap closed,
CURE4Rec's forget sets and fairness."""

import glob
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from scipy import stats
from sklearn.metrics import roc_auc_score

from recbole_unlearn import Config
from recbole_unlearn.data.forget import ForgetRequest
from recbole_unlearn.data.groups import fairness_groups
from recbole_unlearn.evaluation import labeled_metrics as metrics
from recbole_unlearn.evaluation.fairness import per_user_auc
from recbole_unlearn.evaluation.outputs import SplitOutputs
from recbole_unlearn.evaluation.summary import (
    Claim,
    claims_table,
    judge_claims,
    signal_check,
    signal_sentence,
    summarize,
    summary_rows,
)
from recbole_unlearn.quick_start import unlearn_one
from recbole_unlearn.unlearn.protocol import UnlearnProtocol

from conftest import SMALL_WINDOW, quiet, run_cli, write_config_file


def test_summary_is_numpys_mean_and_std_and_scipys_t_interval():
    values = [0.71, 0.69, 0.74, 0.70]
    summary = summarize(values)
    assert summary["mean"] == pytest.approx(np.mean(values))
    assert summary["std"] == pytest.approx(np.std(values, ddof=1))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert summary["ci95"] == pytest.approx((high - low) / 2)
    one = summarize([0.7])
    assert one["mean"] == 0.7 and math.isnan(one["std"]) and math.isnan(one["ci95"])
    assert summarize([0.7, math.nan, 0.9])["mean"] == pytest.approx(0.8)
    assert summarize([0.7, math.nan, 0.9])["n"] == 2 and summarize(values)["n"] == 4


def test_a_seed_without_a_finite_difference_is_not_counted_in_a_claim():
    judged = Claim("a beats b", "m", "a", "b").judge(runs_of([-0.1, math.nan, -0.12]))
    assert judged["seeds"] == 2 and judged["mean"] == pytest.approx(-0.11)
    assert "| a beats b | -0.11 ± " in claims_table([judged]) and " | 2 | " in claims_table([judged])


def test_claims_judged_together_are_holm_corrected_as_by_hand():
    runs = [
        [{"method": "a", "x": 1.0 + dx, "y": 1.0 + dy, "z": 1.0 + dz}, {"method": "b", "x": 1.0, "y": 1.0, "z": 1.0}]
        for dx, dy, dz in [(0.10, 0.30, 0.02), (0.12, 0.05, -0.01), (0.11, 0.20, 0.03), (0.13, 0.15, 0.00)]
    ]
    claims = [Claim(f"a beats b on {m}", m, "a", "b", "higher") for m in ("x", "y", "z")]
    differences = {m: [rows[0][m] - 1.0 for rows in runs] for m in ("x", "y", "z")}
    p = {m: stats.ttest_1samp(values, 0.0).pvalue for m, values in differences.items()}
    # Holm by hand: the i-th smallest p-value times (3 - i), never below the one before it.
    ordered = sorted(p, key=p.get)
    adjusted, running = {}, 0.0
    for rank, m in enumerate(ordered):
        running = max(running, min(1.0, (3 - rank) * p[m]))
        adjusted[m] = running
    verdicts = {v["metric"]: v for v in judge_claims(claims, runs)}
    for m in ("x", "y", "z"):
        assert verdicts[m]["p"] == pytest.approx(p[m]) and verdicts[m]["p_holm"] == pytest.approx(adjusted[m])
        assert verdicts[m]["verdict"] == ("holds" if adjusted[m] < 0.05 else "inconclusive")
    # y holds on its own (p < 0.05) but not among three claims.
    assert p["y"] < 0.05 < adjusted["y"] and Claim("y alone", "y", "a", "b", "higher").judge(runs)["verdict"] == "holds"
    assert "| p (Holm) |" in claims_table(list(verdicts.values()))


def test_summary_rows_cover_every_method_and_numeric_metric():
    runs = [
        [{"method": "original", "test_auc": 0.70, "note": "x"}, {"method": "e2urec", "test_auc": 0.68}],
        [{"method": "original", "test_auc": 0.72, "note": "y"}, {"method": "e2urec", "test_auc": 0.66}],
    ]
    summary = {row["method"]: row for row in summary_rows(runs)}
    assert summary["e2urec"]["seeds"] == 2
    assert summary["e2urec"]["test_auc_mean"] == pytest.approx(0.67)
    assert summary["original"]["test_auc_ci95"] == pytest.approx(summarize([0.70, 0.72])["ci95"])
    assert "note_mean" not in summary["original"]


def runs_of(differences):
    """Runs in which method ``a``'s metric exceeds ``b``'s by the given per-seed differences."""
    return [[{"method": "a", "m": 1.0 + d}, {"method": "b", "m": 1.0}] for d in differences]


@pytest.mark.parametrize(
    "differences, better, margin, verdict",
    [
        ([-0.10, -0.12, -0.11], "lower", 0.0, "holds"),
        ([0.10, 0.12, 0.11], "lower", 0.0, "fails"),
        ([-0.10, 0.12, 0.01], "lower", 0.0, "inconclusive"),
        ([0.10, 0.12, 0.11], "higher", 0.0, "holds"),
        ([-0.005, -0.004, -0.006], "higher", -0.01, "holds"),
        ([-0.10], "lower", 0.0, "inconclusive"),
    ],
)
def test_a_claim_is_judged_by_its_confidence_interval(differences, better, margin, verdict):
    judged = Claim("a beats b", "m", "a", "b", better, margin).judge(runs_of(differences))
    assert judged["verdict"] == verdict
    assert judged["differences"] == pytest.approx(differences)
    assert Claim("c beats b", "m", "c", "b").judge(runs_of(differences)) is None


def outputs(labels, like, users=None):
    like = np.asarray(like, dtype=float)
    return SplitOutputs(
        labels=np.asarray(labels, dtype=float),
        scores=like.astype(np.float32),
        yes_no=np.stack([like, 1 - like], axis=1),
        users=None if users is None else np.asarray(users),
    )


def memorizer(trained_on, samples):
    """P(like) of a model that recalls the label of each sample it was trained on and guesses 0.5 for the
    rest: a model trained on the members."""
    labels, ids = samples
    return [(0.95 if label else 0.05) if i in trained_on else 0.5 for label, i in zip(labels, ids)]


def test_mia_auc_is_higher_for_a_model_trained_on_the_members():
    generator = np.random.default_rng(0)
    members = (generator.integers(0, 2, 200), range(200))
    non_members = (generator.integers(0, 2, 150), range(200, 350))
    member_ids = set(members[1])
    trained = {"forget": outputs(members[0], memorizer(member_ids, members)), "holdout": None}
    trained["holdout"] = outputs(non_members[0], memorizer(member_ids, non_members))
    never_saw = {
        "forget": outputs(members[0], memorizer(set(), members)),
        "holdout": outputs(non_members[0], memorizer(set(), non_members)),
    }
    assert metrics.mia_auc(trained, seed=0) > 0.9 > metrics.mia_auc(never_saw, seed=0) == pytest.approx(0.5)
    evaluation = SimpleNamespace(outputs=trained, retrained=never_saw, config={"seed": 0})
    retrain_auc = metrics.mia_auc(never_saw, seed=0)
    expected = ((1 - metrics.mia_auc(trained, 0)) - (1 - retrain_auc)) / (1 - retrain_auc) * 100
    assert metrics.forget_privleak(evaluation) == pytest.approx(expected) and expected < 0


def gap_evaluation(model, original, retrained):
    return SimpleNamespace(outputs=model, retrained=retrained, original=original, memo={})


# The Original differs from Retrain on the forget set (it remembers the labels), not on the holdout.
HOLDOUT = outputs([1, 0, 1, 0], [0.5, 0.5, 0.4, 0.5])
ORIGINAL = {"forget": outputs([1, 0, 1, 0], [0.9, 0.2, 0.8, 0.1]), "holdout": HOLDOUT}
RETRAINED = {
    "forget": outputs([1, 0, 1, 0], [0.5, 0.5, 0.4, 0.6]),
    "holdout": outputs([1, 0, 1, 0], [0.5, 0.5, 0.4, 0.51]),
}


def test_gap_closed_is_linear_one_at_retrain_zero_at_the_original():
    def gap(like, squared=False):
        model = {"forget": outputs([1, 0, 1, 0], like), "holdout": HOLDOUT}
        evaluation = gap_evaluation(model, ORIGINAL, RETRAINED)
        return (metrics.forget_gap_closed_jsd if squared else metrics.forget_gap_closed)(evaluation)

    original, retrained = ORIGINAL["forget"].like, RETRAINED["forget"].like
    assert gap(retrained) == pytest.approx(1, abs=1e-12) and gap(original) == pytest.approx(0, abs=1e-12)
    assert gap((original + retrained) / 2) == pytest.approx(0.5, abs=1e-9)
    assert gap(0.75 * original + 0.25 * retrained) == pytest.approx(0.25, abs=1e-9)
    # The squared scale calls half-way about three quarters.
    assert 0.7 < gap((original + retrained) / 2, squared=True) < 0.8
    assert gap([0.99, 0.01, 0.99, 0.01]) < 0


def test_gap_closed_without_a_signal_is_nan(caplog):
    # The Original is as far from Retrain on the forget set as on data neither trained on.
    same = outputs([1, 0, 1, 0], [0.55, 0.45, 0.5, 0.6])
    original = {"forget": same, "holdout": same}
    retrained = {
        "forget": outputs([1, 0, 1, 0], [0.5, 0.5, 0.45, 0.55]),
        "holdout": outputs([1, 0, 1, 0], [0.5, 0.5, 0.45, 0.55]),
    }
    evaluation = gap_evaluation({"forget": same, "holdout": same}, original, retrained)
    assert metrics.forget_gap_signal_p(evaluation) > 0.05
    assert math.isnan(metrics.forget_gap_closed(evaluation)) and math.isnan(metrics.forget_gap_closed_jsd(evaluation))
    assert "forget_gap_closed is NaN (no signal)" in caplog.text
    assert metrics.forget_gap_signal_p(gap_evaluation(ORIGINAL, ORIGINAL, RETRAINED)) < 0.05


def hand_dataset(activity):
    """A training split in which user ``u`` has ``activity[u]`` interactions (users 1..n)."""
    users = torch.tensor([user for user, count in activity.items() for _ in range(count)])
    return SimpleNamespace(
        inter_feat={"user_id": users, "item_id": torch.arange(len(users))},
        uid_field="user_id",
        iid_field="item_id",
        item_num=len(users) + 1,
    )


def forgotten_users(dataset, **request):
    mask = ForgetRequest(level="user", **request).mask(dataset)
    return set(dataset.inter_feat["user_id"][torch.from_numpy(mask)].tolist())


def test_core_and_edge_pick_the_most_and_least_active_users():
    dataset = hand_dataset({1: 9, 2: 7, 3: 5, 4: 1, 5: 1, 6: 2, 7: 3, 8: 4, 9: 6, 10: 8})
    assert forgotten_users(dataset, ratio=0.3, selection="core") == {1, 10, 2}
    assert forgotten_users(dataset, ratio=0.3, selection="edge") == {4, 5, 6}
    # Two equally inactive users, one to pick: the seed decides.
    picks = {frozenset(forgotten_users(dataset, ratio=0.1, selection="edge", seed=seed)) for seed in range(20)}
    assert picks == {frozenset({4}), frozenset({5})}
    random = forgotten_users(dataset, ratio=0.3)
    assert len(random) == 3
    # Explicit ids override the selection.
    explicit = SimpleNamespace(**vars(dataset), field2token_id={"user_id": {str(u): u for u in range(1, 11)}})
    explicit.dataset_name = "hand"
    assert forgotten_users(explicit, ids=("4", "9"), selection="core") == {4, 9}
    with pytest.raises(ValueError, match="forget_selection 'core'.*forget_level: user"):
        ForgetRequest(level="item", selection="core")
    with pytest.raises(ValueError, match="forget_selection must be one of"):
        ForgetRequest(selection="active")


def test_fairness_groups_are_retained_users_by_retained_activity_without_cold_or_forgotten_users(caplog):
    # Users 1..40, user u with u training interactions; users 39 and 40 (the most active) are forgotten.
    dataset = hand_dataset({user: user for user in range(1, 41)})
    train_users = dataset.inter_feat["user_id"].numpy()
    groups = fairness_groups(dataset, ~np.isin(train_users, [39, 40]), 0.1)
    assert groups["active"].tolist() == [35, 36, 37, 38]
    assert groups["inactive"].tolist() == list(range(1, 35))
    # Test rows: active users rank perfectly, the others invert; 41 is cold, 40 forgotten: neither counts.
    test_users, labels, like = [], [], []
    for user in [*range(1, 39), 40, 41]:
        test_users += [user, user, user]
        labels += [1, 0, 0]
        like += [0.9, 0.1, 0.2] if user >= 35 else [0.5, 0.9, 0.2]
    test = outputs(labels, like, users=test_users)
    evaluation = SimpleNamespace(
        outputs={"test": test}, groups=groups, memo={}, config={"unlearn_fairness_min_users": 4}
    )
    assert metrics.fairness("active")(evaluation) == 1 and metrics.fairness("inactive")(evaluation) == 0.5
    assert metrics.fairness_gap(evaluation) == 0.5
    assert [metrics.fairness("active", key)(evaluation) for key in ("users", "rows", "positives")] == [4, 12, 4]
    assert metrics.fairness("inactive", "users")(evaluation) == 34
    assert metrics.test_auc_retained(evaluation) == roc_auc_score(labels[:-6], like[:-6])
    # Below the threshold: NaN, with the reason.
    evaluation = SimpleNamespace(
        outputs={"test": test}, groups=groups, memo={}, config={"unlearn_fairness_min_users": 5}
    )
    assert math.isnan(metrics.fairness("active")(evaluation)) and math.isnan(metrics.fairness_gap(evaluation))
    assert metrics.fairness("active", "users")(evaluation) == 4
    assert (
        "active group's test AUC is NaN: 4 users have a per-user value, fewer than unlearn_fairness_min_users = 5"
        in caplog.text
    )


def test_per_user_auc_is_scikit_learns_per_user_with_ties():
    generator = np.random.default_rng(0)
    users = generator.integers(0, 30, 600)
    labels = generator.integers(0, 2, 600).astype(float)
    scores = generator.integers(0, 5, 600) / 4  # many ties
    per_user = per_user_auc(users, labels, scores)
    for user, auc in per_user.auc.items():
        chosen = users == user
        assert auc == pytest.approx(roc_auc_score(labels[chosen], scores[chosen]), abs=1e-12)


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory):
    """A 2-seed run of core users' forget request through the command line (DeepFM, small slice)."""
    directory = tmp_path_factory.mktemp("seeds")
    config_file = write_config_file(directory / "run.yaml", epochs=1)
    out = run_cli(
        "--model=DeepFM",
        f"--config_files={config_file}",
        "--unlearn_method=neggrad,e2urec",
        "--forget_selection=core",
        "--unlearn_seeds=[1,2]",
        "--unlearn_compare=[['neggrad','e2urec']]",
        cwd=directory,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (summary_dir,) = glob.glob(str(directory / "saved" / "unlearn" / "DeepFM-ml-100k-seeds-*"))
    with open(os.path.join(summary_dir, "results.json")) as f:
        return directory, out.stdout, json.load(f)


def test_seeds_give_per_seed_rows_a_summary_and_claims(seeded_run):
    _, stdout, results = seeded_run
    assert [run["seed"] for run in results["runs"]] == [1, 2]
    assert all(
        [row["method"] for row in run["rows"]] == ["original", "retrain", "neggrad", "e2urec"]
        for run in results["runs"]
    )
    # Different seeds: different models (the core users are the same, the initialisation is not).
    first, second = ({row["method"]: row for row in run["rows"]} for run in results["runs"])
    assert first["original"]["test_auc"] != second["original"]["test_auc"]
    e2urec = next(row for row in results["summary"] if row["method"] == "e2urec")
    auc = [first["e2urec"]["test_auc"], second["e2urec"]["test_auc"]]
    assert e2urec["test_auc_mean"] == pytest.approx(np.mean(auc))
    assert e2urec["test_auc_ci95"] == pytest.approx(summarize(auc)["ci95"])
    claims = {claim["text"]: claim for claim in results["claims"]}
    below = claims["E2URec's forget JSD (y/n) to Retrain is below neggrad's"]
    expected = [first["e2urec"]["forget_jsd_yesno"] - first["neggrad"]["forget_jsd_yesno"]]
    assert below["differences"][0] == pytest.approx(expected[0])
    assert all(claim["verdict"] in ("holds", "fails", "inconclusive") for claim in results["claims"])
    assert any(text.startswith("neggrad higher gap closed than e2urec") for text in claims)
    # Claims naming a method that did not run (label_flip, SISA) are left out.
    assert not any("label_flip" in text or "sisa" in text for text in claims)
    assert " ± " in stdout and "| claim | mean difference ± 95% CI | seeds | p (Holm) | verdict |" in stdout


def test_a_seeds_receipt_records_selection_and_seeds_and_verifies(seeded_run):
    directory, _, results = seeded_run
    run_dir = results["runs"][1]["context"]["run_dir"]
    receipt_file = os.path.join(run_dir, "receipt-e2urec.json")
    with open(os.path.join(directory, receipt_file)) as f:
        request = json.load(f)["request"]
    assert request["selection"] == "core" and request["seed"] == 2 and request["seeds"] == [1, 2]
    out = run_cli("verify", receipt_file, cwd=directory, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "OK   forget_mia_auc" in out.stdout and "OK   forget_gap_closed" in out.stdout


def test_edge_users_run_end_to_end_through_the_python_api(workdir):
    result = unlearn_one(
        "DeepFM", "ml-100k", config_dict=quiet(epochs=1, unlearn_method="neggrad", forget_selection="edge")
    )
    assert "of edge users" in result["context"]["forget_request"]
    assert [row["method"] for row in result["rows"]] == ["original", "retrain", "neggrad"]
    assert 0 <= result["rows"][2]["forget_mia_auc"] <= 1


def test_bad_seed_options_name_their_key(workdir):
    with pytest.raises(ValueError, match="unlearn_compare judges claims over seeds: set unlearn_seeds"):
        unlearn_one("DeepFM", "ml-100k", config_dict=quiet(unlearn_compare=[["neggrad", "e2urec"]]))
    with pytest.raises(ValueError, match="unlearn_seeds lists a seed more than once"):
        unlearn_one("DeepFM", "ml-100k", config_dict=quiet(epochs=1, unlearn_seeds=[3, 3]))
    with pytest.raises(ValueError, match="unlearn_seeds cannot be combined with unlearn_after"):
        unlearn_one("DeepFM", "ml-100k", config_dict=quiet(unlearn_seeds=[3, 4], unlearn_after="receipt.json"))


def user_item_pairs(dataset):
    inter = dataset.inter_feat
    return set(zip(inter[dataset.uid_field].tolist(), inter[dataset.iid_field].tolist()))


@pytest.mark.parametrize("level", ["user", "interaction"])
def test_the_mia_holdout_reaches_no_model(workdir, level):
    """Every model trains on rows of the protocol's training split (the Original on its loader, Retrain
    and SISA's shards on subsets of it): the holdout is in none of them, nor in the forget set."""
    config = Config("DeepFM", "ml-100k", config_dict=quiet(epochs=1, forget_level=level))
    protocol = UnlearnProtocol(config)
    full_train = data_preparation(config, create_dataset(config))[0]._dataset
    holdout = user_item_pairs(protocol.holdout_dataset)
    training = user_item_pairs(protocol.train_dataset)
    assert holdout and not holdout & training and not holdout & user_item_pairs(protocol.train_data._dataset)
    assert not holdout & user_item_pairs(protocol.subset(protocol.forget_rows))
    assert holdout | training == user_item_pairs(full_train)
    if level == "user":
        users = set(protocol.holdout_dataset.inter_feat["user_id"].tolist())
        assert not users & set(protocol.train_dataset.inter_feat["user_id"].tolist())
        # Drawn as the request is: 5% of the training users.
        assert len(users) == round(0.05 * len(set(full_train.inter_feat["user_id"].tolist())))


def test_retrains_mia_auc_is_near_chance_against_the_holdout_over_seeds(workdir):
    """Forgotten and held-out users are both random users Retrain never saw: its attack AUC is 0.5 but
    for sampling noise (about 0.03 per seed on this slice)."""
    result = unlearn_one(
        "DeepFM",
        "ml-100k",
        config_dict=quiet(epochs=1, unlearn_method="neggrad", val_interval=SMALL_WINDOW, unlearn_seeds=[1, 2, 3]),
    )
    retrain = next(row for row in result["rows"] if row["method"] == "retrain")
    assert abs(retrain["forget_mia_auc_mean"] - 0.5) < 0.1, retrain["forget_mia_auc_mean"]


def test_the_old_validation_holdout_is_an_option_and_a_bad_value_names_the_key(workdir):
    config = Config("DeepFM", "ml-100k", config_dict=quiet(epochs=1, unlearn_mia_holdout="valid"))
    protocol = UnlearnProtocol(config)
    assert user_item_pairs(protocol.holdout_dataset) <= user_item_pairs(protocol.valid_data._dataset)
    with pytest.raises(ValueError, match="unlearn_mia_holdout must be a share of the training split"):
        UnlearnProtocol(Config("DeepFM", "ml-100k", config_dict=quiet(epochs=1, unlearn_mia_holdout=1.5)))


def test_the_signal_check_says_per_seed_whether_there_was_anything_to_forget():
    def runs(*p_values):
        return [[{"method": "original", "forget_gap_signal_p": p}, {"method": "retrain"}] for p in p_values]

    assert signal_check(runs(0.001, 0.2, 0.01)) == {"seeds": 3, "with_signal": 2, "p": [0.001, 0.2, 0.01]}
    assert signal_sentence(signal_check(runs(0.001, 0.01))).startswith("Forgetting signal on 2 of 2 seeds")
    assert signal_sentence(signal_check(runs(0.3, 0.6))).startswith("No measurable forgetting signal on any of 2")
    assert "on 1 of 2 seeds only" in signal_sentence(signal_check(runs(0.3, 0.01)))
    # Ranking rows have no signal check.
    assert signal_check([[{"method": "original", "test_ndcg": 0.1}]]) is None
