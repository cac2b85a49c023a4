"""RecBole's ranking models (general and sequential) under unlearning: what Retrain trains on holds nothing
forgotten, the ranking metrics match hand computations, and every method runs and verifies on BPR and
SASRec through the command line."""

import glob
import json
import math
import os

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.utils import get_model
from scipy import stats

from recbole_unlearn import Config
from recbole_unlearn.checkpoint import load_checkpoint, save_checkpoint
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation import ranking_metrics as r
from recbole_unlearn.evaluation.ranking import ForgetQueries, QueryBatch, RankingOutputs, forget_query_outputs
from recbole_unlearn.evaluation.ranking_metrics import RankingEvaluation
from recbole_unlearn.evaluation.summary import signal_check
from recbole_unlearn.unlearn.methods.sisa import SISA
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.unlearn_trainer import FrozenOutputs

from conftest import RANKING_TINY, quiet, result_rows, run_cli, write_config_file


def protocol_for(model, **overrides):
    return UnlearnProtocol(Config(model, "ml-100k", config_dict=quiet(**{"epochs": 1, **RANKING_TINY, **overrides})))


def pairs_of(dataset):
    inter = dataset.inter_feat
    return set(zip(inter[dataset.uid_field].tolist(), inter[dataset.iid_field].tolist()))


# Sequential data: every retained sample, target and history, against the removed interactions.


def raw_pairs(dataset, rows):
    tokens = (dataset.id2token(field, dataset.inter_feat[field].numpy()[rows]) for field in ("user_id", "item_id"))
    return [f"{user}:{item}" for user, item in zip(*tokens)]


def middle_samples(dataset, users=10):
    """Rows of the middle training sample of the first ``users`` users with at least 3 samples."""
    rows = {}
    for row, user in enumerate(dataset.inter_feat["user_id"].tolist()):
        rows.setdefault(user, []).append(row)
    return [user_rows[len(user_rows) // 2] for user_rows in rows.values() if len(user_rows) >= 3][:users]


@pytest.mark.parametrize("level", ["user", "item", "interaction"])
def test_a_forgotten_interaction_leaves_every_retained_sequence_as_target_and_as_history(workdir, level):
    request_settings = {"forget_level": level, "forget_ratio": 0.2 if level == "user" else 0.1}
    if level == "interaction":
        train = protocol_for("SASRec").train_dataset
        request_settings["forget_ids"] = raw_pairs(train, middle_samples(train))
    protocol = protocol_for("SASRec", **request_settings)
    train = protocol.train_dataset
    inter, max_length = train.inter_feat, protocol.config["MAX_ITEM_LIST_LENGTH"]
    users, items = inter["user_id"].numpy(), inter["item_id"].numpy()
    histories, lengths = inter["item_id_list"].numpy(), inter["item_length"].numpy()
    removed = set(zip(users[protocol.removed_mask].tolist(), items[protocol.removed_mask].tolist()))
    removed_items = set(items[protocol.forget_rows].tolist()) if level == "item" else set()
    # Each user's training sequence, read from the samples: the first one's history item, then the targets.
    sequence = {}
    for row in range(len(users)):
        sequence.setdefault(users[row], [histories[row][0]]).append(items[row])
    retained = protocol.retained_dataset.inter_feat
    shortened = 0
    for user, target, history, length in zip(
        retained["user_id"].tolist(),
        retained["item_id"].tolist(),
        retained["item_id_list"].numpy(),
        retained["item_length"].tolist(),
    ):
        assert (user, target) not in removed and target not in removed_items
        assert length >= 1 and not history[length:].any()
        kept = [
            item
            for item in sequence[user][: sequence[user].index(target)]
            if (user, item) not in removed and item not in removed_items
        ]
        assert list(history[:length]) == kept[-max_length:]
        shortened += length < min(len(sequence[user][: sequence[user].index(target)]), max_length)
    assert len(retained) <= len(protocol.retain_rows)
    assert shortened > 0 or level == "user"
    # What Retrain trains on: these samples and nothing else.
    batches = list(protocol.retained_loader(protocol.retain_rows))
    assert sum(len(batch) for batch in batches) == len(retained)
    assert set(lengths.tolist()) >= {1}


def test_an_earlier_item_request_stays_out_of_every_sequence_of_a_later_request(workdir):
    first = protocol_for("SASRec", forget_level="item", forget_ratio=0.05)
    train = first.train_dataset
    items = set(train.inter_feat["item_id"].numpy()[first.forget_rows].tolist())
    first_positions = train.inter_feat["item_id_list"].numpy()[:, 0]
    # Some earlier-removed item is a sequence's history-only first item: the case to carry over.
    assert items & set(first_positions.tolist())
    users = train.inter_feat["user_id"].numpy()
    retained_counts = np.bincount(users[~first.removed_mask], minlength=users.max() + 1)
    later_rows = [row for row in middle_samples(train, users=50) if not first.removed_mask[row]]
    later_ids = raw_pairs(train, [row for row in later_rows if retained_counts[users[row]] >= 5][:10])
    config = Config(
        "SASRec",
        "ml-100k",
        config_dict=quiet(epochs=1, **RANKING_TINY, forget_level="interaction", forget_ids=later_ids),
    )
    later = UnlearnProtocol(config, first)
    retained = later.retained_dataset.inter_feat
    for target, history, length in zip(
        retained["item_id"].tolist(), retained["item_id_list"].numpy(), retained["item_length"].tolist()
    ):
        assert target not in items and not items & set(history[:length].tolist())
    assert later.removed_mask[first.removed_mask].all()


def test_an_interaction_request_that_empties_a_users_sequence_is_refused(workdir):
    protocol = protocol_for("SASRec")
    train = protocol.train_dataset
    users = train.inter_feat["user_id"].numpy()
    emptied = np.flatnonzero(users == users[0])
    ids = [
        f"{u}:{i}"
        for u, i in zip(*(train.id2token(f, train.inter_feat[f].numpy()[emptied]) for f in ("user_id", "item_id")))
    ]
    with pytest.raises(BadInput, match="removes every training sample of 1 user.*forget_level: user"):
        protocol_for("SASRec", forget_level="interaction", forget_ids=ids)


# General data: the negatives and a graph model's graph come from retained data only.


@pytest.mark.parametrize("level", ["user", "interaction"])
def test_retrain_of_a_graph_model_sees_no_forgotten_interaction_in_its_graph_or_its_negatives(workdir, level):
    protocol = protocol_for("LightGCN", forget_level=level, forget_ratio=0.2)
    forgotten = pairs_of(protocol.subset(protocol.forget_rows))
    retained = pairs_of(protocol.retained_dataset)
    assert forgotten and not forgotten & retained
    retrain_graph = protocol.new_model(dataset=protocol.retained_dataset).interaction_matrix
    assert set(zip(retrain_graph.row.tolist(), retrain_graph.col.tolist())) == retained
    # Fine-tuning methods start from the Original's weights on the retained graph.
    original = protocol.new_model(dataset=protocol.train_dataset)
    moved = protocol.on_retained_data(original)
    assert set(zip(moved.interaction_matrix.row.tolist(), moved.interaction_matrix.col.tolist())) == retained
    assert all(torch.equal(moved.state_dict()[key], value) for key, value in original.state_dict().items())
    sampler = protocol.retained_loader(protocol.retain_rows)._sampler
    for user, item in forgotten:
        assert item not in sampler.used_ids[user]


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_a_shard_model_early_stops_on_its_own_users_validation_rows(workdir, model, monkeypatch):
    protocol = protocol_for(model, sisa_n_shards=3, sisa_epochs=None, forget_ratio=0.2)
    users_of = lambda data: set(data._dataset.inter_feat["user_id"].tolist())  # noqa: E731
    train, seen = protocol.train, []

    def recording_train(name, train_data, valid_data, config=None):
        seen.append((users_of(train_data), users_of(valid_data)))
        return train(name, train_data, valid_data, config)

    monkeypatch.setattr(protocol, "train", recording_train)
    SISA.shard_models(protocol, start=None)
    every_valid_user, forgotten = users_of(protocol.valid_data), users_of(protocol.forget_loader())
    assert len(seen) == 3 and forgotten & every_valid_user
    for shard_users, valid_users in seen:
        assert valid_users == shard_users & every_valid_user < every_valid_user
        assert not valid_users & forgotten


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_the_signal_checks_holdout_queries_are_as_many_and_hold_nothing_forgotten(workdir, model):
    protocol = protocol_for(model, forget_ratio=0.1)
    queries = protocol.queries
    holdout_users = np.concatenate([batch.interaction["user_id"].numpy() for batch in queries.holdout])
    assert len(holdout_users) == len(queries.users)
    assert not set(holdout_users.tolist()) & set(queries.users.tolist())
    if model == "BPR":  # one query per user
        assert len(set(holdout_users.tolist())) == len(holdout_users)


# Metrics against hand computations on tiny examples.


class FixedScores(torch.nn.Module):
    """A general model whose scores are a fixed [user, item] table."""

    ITEM_ID = "item_id"

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))

    def full_sort_predict(self, interaction):
        return self.table[interaction["user_id"]]


def index_pairs(*pairs):
    return torch.tensor([q for q, _ in pairs]), torch.tensor([i for _, i in pairs])


def test_forget_query_outputs_by_hand():
    # Item 0 is padding; user 0's retained item 3 is masked; targets: user 0 items 1, 2, user 1 item 4.
    model = FixedScores([[0, 5, 1, 9, 0, 2, 3], [0, 1, 2, 3, 4, 0, 0.5]])
    batch = QueryBatch(
        Interaction({"user_id": torch.tensor([0, 1])}),
        masked=index_pairs((0, 3)),
        targets=index_pairs((0, 1), (0, 2), (1, 4)),
        non_members=index_pairs((0, 5), (0, 6), (1, 6)),
    )
    holdout = QueryBatch(Interaction({"user_id": torch.tensor([1])}), index_pairs((0, 4)), *[index_pairs()] * 2)
    queries = ForgetQueries([batch], np.array([0, 1]), [holdout])
    outputs = forget_query_outputs(model, queries, 2, (7, 100), retrained=model)
    # Top-2: user 0 -> items 1 (5), 6 (3) with 3 masked; user 1 -> items 4, 3. Hits: item 1 and item 4.
    assert outputs["topk"].tolist() == [[1, 6], [4, 3]]
    # User 1 as a holdout query with item 4 masked: items 3, 2.
    assert outputs["holdout_topk"].tolist() == [[3, 2]]
    assert (outputs["hits"], outputs["targets"]) == (2, 3)
    assert outputs["member_scores"].tolist() == [5, 1, 4] and outputs["non_member_scores"].tolist() == [2, 3, 0.5]
    assert np.allclose(outputs["distances"]["jsd"], 0)


def outputs_with(**fields):
    defaults = {
        "utility": {"test": {"ndcg@20": 0.1}},
        "test_users": np.array([1, 2, 3, 4]),
        "test_ndcg": np.array([1.0, 0.5, 0.0, 0.9]),
        "topk": np.array([[1, 2, 3], [4, 5, 6]]),
        "hits": 2,
        "targets": 3,
        "member_scores": np.array([5.0, 1.0, 4.0]),
        "non_member_scores": np.array([2.0, 3.0, 0.5]),
    }
    return RankingOutputs(**{**defaults, **fields})


def evaluation_of(outputs, retrained, original):
    config = {"topk": [10, 20], "unlearn_fairness_min_users": 1}
    # User 4 is forgotten or cold: in no group.
    groups = {"active": np.array([1]), "inactive": np.array([2, 3])}
    return RankingEvaluation(config, outputs, retrained, original, {}, 1, 1, groups=groups)


def test_ranking_metrics_by_hand():
    model = outputs_with()
    retrained = outputs_with(
        topk=np.array([[1, 2, 9], [7, 8, 6]]),
        member_scores=np.array([1.0, 2.0]),
        non_member_scores=np.array([1.5, 3.0]),
    )
    original = outputs_with(topk=np.array([[9, 8, 7], [1, 2, 3]]))
    evaluation = evaluation_of(model, retrained, original)
    assert r.utility("test", "ndcg")(evaluation) == 0.1  # at the largest K
    assert r.forget_exposure(evaluation) == pytest.approx(2 / 3)
    # Jaccard: {1,2}/{1,2,3,9} = 0.5 and {6}/{4,5,6,7,8} = 0.2; the Original's: 1/5 and 0.
    assert r.forget_topk_overlap(evaluation) == pytest.approx(0.35)
    assert r.forget_gap_closed_topk(evaluation) == pytest.approx(1 - 0.65 / 0.9)
    # Members above non-members in 7 of 9 pairs; Retrain's in 1 of 4.
    assert r.forget_score_mia_auc(evaluation) == pytest.approx(7 / 9)
    assert r.forget_score_privleak(evaluation) == pytest.approx(((1 - 7 / 9) - 0.75) / 0.75 * 100)
    # Active user 1 (NDCG 1.0) against users 2 and 3 (0.5, 0.0); user 4 counts in neither.
    assert r.fairness_gap_ndcg(evaluation) == pytest.approx(0.75)
    assert r.fairness_ndcg("inactive", size=True)(evaluation) == 2
    assert r.test_ndcg_retained(evaluation) == pytest.approx(0.5)
    assert math.isnan(r.forget_gap_closed_topk(evaluation_of(model, retrained, retrained)))


def test_the_signal_check_line_counts_a_ranking_models_seeds_with_a_signal():
    runs = [[{"method": "original", "forget_gap_signal_p_topk": p}] for p in (0.01, 0.2, float("nan"))]
    assert signal_check(runs) == {"seeds": 2, "with_signal": 1, "p": [0.01, 0.2]}


def test_the_ranking_signal_check_by_hand():
    model = outputs_with()
    # The Original's forget distances to Retrain (1 - Jaccard): 1 - 1/5 and 1 - 0, as in the test above.
    retrained = outputs_with(topk=np.array([[1, 2, 9], [7, 8, 6]]), holdout_topk=np.array([[1, 2, 3], [4, 5, 7]] * 2))
    holdout_close = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3], [4, 5, 6]])  # distances 0, 0.5, 0, 0.5
    original = outputs_with(topk=np.array([[9, 8, 7], [1, 2, 3]]), holdout_topk=holdout_close)
    evaluation = evaluation_of(model, retrained, original)
    expected = stats.ttest_ind([0.8, 1.0], [0, 0.5, 0, 0.5], equal_var=False, alternative="greater").pvalue
    assert r.forget_gap_signal_p_topk(evaluation) == pytest.approx(expected) and expected < 0.05
    assert r.forget_gap_closed_topk(evaluation) == pytest.approx(1 - 0.65 / 0.9)
    # Holdout lists as far from Retrain's as the forget lists: no signal, gap closed is NaN.
    original.holdout_topk = np.array([[7, 8, 9], [1, 2, 3], [7, 8, 9], [1, 2, 3]])
    assert r.forget_gap_signal_p_topk(evaluation) > 0.05
    assert math.isnan(r.forget_gap_closed_topk(evaluation))


# Every method through the command line, and verify.

CLI_SETTINGS = {**RANKING_TINY, "epochs": 2, "sisa_epochs": 1, "state": "info"}


def expected_methods(model):
    """The rows of an ``unlearn_method: all`` run: SASRec's catalogue answer has no flipped label, and Pop
    (fitted without gradient descent) has the exact methods only."""
    methods = result_rows()
    if model == "Pop":
        return ["original", "retrain", "sisa"]
    return [name for name in methods if not (model == "SASRec" and name == "label_flip")]


# BPR and Pop share RecBole's random split; SASRec has its leave-one-out one.
RANKING_MODELS = ["BPR", "SASRec", "Pop"]


@pytest.fixture(scope="module")
def ranking_cli_run(tmp_path_factory):
    """One command-line run comparing the ``RANKING_MODELS`` with every applicable method."""
    workdir = tmp_path_factory.mktemp("ranking_cli")
    config_file = write_config_file(workdir / "run.yaml", **CLI_SETTINGS)
    out = run_cli(f"--model={','.join(RANKING_MODELS)}", f"--config_files={config_file}", cwd=workdir)
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


@pytest.mark.parametrize("model", RANKING_MODELS)
def test_every_method_runs_on_a_ranking_model_and_verifies_through_the_cli(ranking_cli_run, model):
    workdir = ranking_cli_run
    (results,) = glob.glob(str(workdir / "saved" / "unlearn" / f"{model}-ml-100k-*" / "results.json"))
    with open(results) as f:
        rows = {row["method"]: row for row in json.load(f)["results"]}
    assert list(rows) == expected_methods(model)
    for method, row in rows.items():
        for key in ("test_ndcg", "test_ndcg@10", "valid_ndcg@20", "forget_exposure", "forget_score_mia_auc"):
            assert math.isfinite(row[key]), (method, key)
        assert "test_auc" not in row and "forget_gap_signal_p_topk" in row
    assert rows["retrain"]["forget_topk_overlap"] == 1 and rows["retrain"]["forget_catalogue_jsd"] == 0
    if model == "SASRec":
        logs = "".join(open(path).read() for path in glob.glob(str(workdir / "log" / model / "*.log")))
        assert "Skipping label_flip" in logs
    # BPR's split is random (RecBole's order RO): a rebuilt receipt must draw the same one.
    receipts = sorted(glob.glob(os.path.join(os.path.dirname(results), "receipt-*.json")))
    verified = run_cli("verify", *receipts, cwd=workdir)
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]


def test_models_on_different_splits_are_compared_in_a_table_each(ranking_cli_run):
    (directory,) = glob.glob(str(ranking_cli_run / "saved" / "unlearn" / "comparison-ml-100k-*"))
    with open(os.path.join(directory, "comparison.json")) as f:
        document = json.load(f)
    groups = document["context"]["data"]
    assert [group["models"] for group in groups] == [["BPR", "Pop"], ["SASRec"]]
    assert groups[0]["split_sha256"] != groups[1]["split_sha256"]
    with open(os.path.join(directory, "comparison.md")) as f:
        headings = [line for line in f if line.startswith(tuple(RANKING_MODELS))]
    assert [heading.split(" (")[0] for heading in headings] == ["BPR, Pop", "SASRec"]
    splits = {(row["model"], row["split_sha256"]) for row in document["results"]}
    assert splits == {(model, group["split_sha256"]) for group in groups for model in group["models"]}


def test_frozen_outputs_of_a_pairwise_sample_are_kept_per_sampled_negative(workdir):
    """A BPR answer depends on the negative, drawn anew each epoch: a teacher's output is not reused for
    the same user and item with another negative."""
    memo = FrozenOutputs(Config("BPR", "ml-100k", config_dict=quiet()), 1024)
    computed = []

    def teacher(batch):
        computed.append(batch["neg_item_id"].tolist())
        return batch["neg_item_id"].double()

    def sample(negative):
        return Interaction(
            {"user_id": torch.tensor([1]), "item_id": torch.tensor([2]), "neg_item_id": torch.tensor([negative])}
        )

    assert memo("teacher", sample(3), teacher).tolist() == [3.0]
    assert memo("teacher", sample(4), teacher).tolist() == [4.0]
    assert memo("teacher", sample(3), teacher).tolist() == [3.0]
    assert computed == [[3], [4]]


@pytest.mark.parametrize("model", ["Pop", "ItemKNN", "EASE"])
def test_a_traditional_models_fitted_state_reloads_bit_for_bit_from_its_checkpoint(workdir, model):
    """Pop's counts and ItemKNN's and EASE's matrices live outside the state dict: the checkpoint holds them,
    so a model loaded into one fitted on other data scores as the saved one did."""
    config = Config(model, "ml-100k", config_dict=quiet(epochs=1, **RANKING_TINY))
    train_data, _, _ = data_preparation(config, create_dataset(config))
    dataset = train_data._dataset
    fitted = get_model(model)(config, dataset)
    for batch in train_data:
        fitted.calculate_loss(batch)
    path = str(workdir / f"{model}.safetensors")
    save_checkpoint(fitted, path, {"model": model})
    other_data = dataset.copy(dataset.inter_feat[: len(dataset.inter_feat) // 2])
    loaded = get_model(model)(config, other_data)
    load_checkpoint(loaded, path)
    users = Interaction({dataset.uid_field: torch.arange(1, 50)})
    assert torch.equal(loaded.full_sort_predict(users), fitted.full_sort_predict(users))
