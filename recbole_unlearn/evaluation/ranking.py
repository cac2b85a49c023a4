"""One pass of a ranking model (general or sequential) over the evaluation data, kept for every metric.

Utility is RecBole's full-sort evaluation of valid and test: its loaders (each user's training items
masked), its collector and its evaluator (NDCG, Recall, Hit, MRR at ``topk``); per-user NDCG at the
largest K is kept for the fairness metric.

Forgetting is read on *forget queries*, each scored over the whole catalogue:

- a general model: one query per forgotten user; the user's retained training items are masked (they fill
  every model's top-K), the forgotten ones are not, and are the query's targets;
- a sequential model: one query per forgotten training sample (its history as trained on); its target
  is the forgotten item; nothing is masked, as in RecBole's sequential evaluation.

Per query the pass keeps the top-K items (K = the largest ``topk``), the scores of the targets
(membership-inference members) and of as many items the user never interacted with in any split
(non-members, seeded), and the Jensen-Shannon divergence of the catalogue softmax to the Retrain model's.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.evaluator import Collector, Evaluator
from recbole.evaluator.metrics import NDCG

from recbole_unlearn.config import config_with
from recbole_unlearn.data.sequences import is_sequential
from recbole_unlearn.evaluation.distances import js_divergence

# RecBole's ranking metrics every row reports, at each of the configured ``topk``.
UTILITY_METRICS = ("NDCG", "Recall", "Hit", "MRR")


def largest_k(config):
    topk = config["topk"]
    return max(topk) if isinstance(topk, list) else topk


@dataclass
class QueryBatch:
    interaction: Interaction  # what full_sort_predict reads (user ids, or histories)
    masked: tuple  # (query, item) index arrays scored -inf
    targets: tuple  # (query, item) index arrays of the forgotten items (members)
    non_members: tuple  # (query, item) index arrays of never-seen items, as many per query as targets


@dataclass
class ForgetQueries:
    batches: list
    users: np.ndarray  # the user of each query

    @classmethod
    def build(cls, config, train_dataset, forget_rows, removed_mask, splits, seed):
        """The queries of the forget rows of ``train_dataset``; ``splits``: the train, valid and test
        datasets (what counts as seen when drawing non-members)."""
        uid, iid = train_dataset.uid_field, train_dataset.iid_field
        users = train_dataset.inter_feat[uid].numpy()
        items = train_dataset.inter_feat[iid].numpy()
        seen = seen_items(splits)
        generator = np.random.default_rng(seed)
        batch_size = config["eval_batch_size"]
        if is_sequential(train_dataset):
            query_users = users[forget_rows]
            query_targets = [np.array([item]) for item in items[forget_rows]]
            query_masked = [np.array([], dtype=np.int64)] * len(forget_rows)
            inputs = [
                train_dataset.inter_feat[forget_rows[i : i + batch_size]]
                for i in range(0, len(forget_rows), batch_size)
            ]
        else:
            query_users = np.unique(users[forget_rows])
            forgotten = np.zeros(len(users), dtype=bool)
            forgotten[forget_rows] = True
            query_targets = [items[(users == user) & forgotten] for user in query_users]
            query_masked = [items[(users == user) & ~removed_mask] for user in query_users]
            inputs = [
                Interaction({uid: torch.from_numpy(query_users[i : i + batch_size])})
                for i in range(0, len(query_users), batch_size)
            ]
        non_members = [
            never_seen_sample(seen.get(user, set()), len(targets), train_dataset.item_num, generator)
            for user, targets in zip(query_users, query_targets)
        ]
        batches = []
        for number, interaction in enumerate(inputs):
            chosen = range(number * batch_size, number * batch_size + len(interaction))
            batches.append(
                QueryBatch(
                    interaction,
                    pairs([query_masked[q] for q in chosen]),
                    pairs([query_targets[q] for q in chosen]),
                    pairs([non_members[q] for q in chosen]),
                )
            )
        return cls(batches, query_users)


def pairs(items_per_query):
    """(query index, item) arrays of a batch's per-query item lists."""
    queries = np.repeat(np.arange(len(items_per_query)), [len(items) for items in items_per_query])
    items = np.concatenate(items_per_query) if items_per_query else np.array([], dtype=np.int64)
    return torch.from_numpy(queries), torch.from_numpy(items.astype(np.int64))


def seen_items(datasets):
    """Each user's items in any of ``datasets`` (targets, and histories of sequential samples)."""
    seen = {}
    for dataset in datasets:
        inter = dataset.inter_feat
        users = inter[dataset.uid_field].numpy()
        columns = [inter[dataset.iid_field].numpy()[:, None]]
        if is_sequential(dataset):
            columns.append(inter[dataset.item_id_list_field].numpy())
        for user, row in zip(users, np.concatenate(columns, axis=1)):
            seen.setdefault(user, set()).update(row.tolist())
    return seen


def never_seen_sample(seen, count, item_num, generator):
    """``count`` distinct items (not the padding item 0) the user never interacted with."""
    candidates = np.setdiff1d(np.arange(1, item_num), np.fromiter(seen, dtype=np.int64, count=len(seen)))
    return np.sort(generator.choice(candidates, size=min(count, len(candidates)), replace=False))


@dataclass
class RankingOutputs:
    utility: dict  # split -> {RecBole metric key: value}
    test_users: np.ndarray  # the user of each test row of RecBole's full-sort loader
    test_ndcg: np.ndarray  # NDCG at the largest K of each of those rows
    topk: np.ndarray  # [queries, K] each forget query's top-K items
    hits: int  # forgotten items in their query's top-K
    targets: int  # forgotten items over all queries
    member_scores: np.ndarray
    non_member_scores: np.ndarray
    distances: dict = field(default_factory=dict)  # name -> per-query distance to the Retrain model


def catalogue_scores(model, interaction, device, item_num, batch_size):
    """Scores of every item for each row of ``interaction``; the padding item 0 at -inf. A model without
    ``full_sort_predict`` (NeuMF, ...) scores each (row, item) pair with ``predict``, as RecBole's trainer
    does, ``batch_size`` pairs at a time."""
    interaction = interaction.to(device)
    try:
        scores = model.full_sort_predict(interaction)
    except NotImplementedError:
        pairs = interaction.repeat_interleave(item_num)
        pairs.update(Interaction({model.ITEM_ID: torch.arange(item_num, device=device).repeat(len(interaction))}))
        scores = torch.cat(
            [model.predict(pairs[start : start + batch_size]) for start in range(0, len(pairs), batch_size)]
        )
    scores = scores.view(len(interaction), -1).double()
    scores[:, 0] = -torch.inf
    return scores


@torch.no_grad()
def collect_ranking_outputs(config, model, valid_data, test_data, queries, retrained=None):
    """``model``'s ``RankingOutputs``; with ``retrained`` (which may be ``model``), also its catalogue
    distances to it on the forget queries."""
    model.eval()
    if retrained is not None:
        retrained.eval()
    device = next(model.parameters()).device
    utility = {
        split: full_sort_evaluation(config, model, data, device)
        for split, data in (("valid", valid_data), ("test", test_data))
    }
    _, test_users, test_ndcg = utility["test"]
    sizes = (test_data._dataset.item_num, config["eval_batch_size"])
    return RankingOutputs(
        utility={split: results for split, (results, _, _) in utility.items()},
        test_users=test_users,
        test_ndcg=test_ndcg,
        **forget_query_outputs(model, queries, largest_k(config), sizes, retrained),
    )


@torch.no_grad()
def forget_query_outputs(model, queries, k, sizes, retrained=None):
    """The forget-query fields of ``RankingOutputs`` (``sizes``: the catalogue's and a scoring batch's)."""
    device = next(model.parameters()).device
    topk, hits, targets, members, non_members, jsd = [], 0, 0, [], [], []
    for batch in queries.batches:
        scores = catalogue_scores(model, batch.interaction, device, *sizes)
        scores[batch.masked] = -torch.inf
        top = torch.topk(scores, k, dim=-1).indices
        topk.append(top.cpu())
        in_top = (top[batch.targets[0]] == batch.targets[1][:, None].to(device)).any(-1)
        hits, targets = hits + int(in_top.sum()), targets + len(batch.targets[1])
        members.append(scores[batch.targets].cpu())
        non_members.append(scores[batch.non_members].cpu())
        if retrained is not None:
            reference = scores
            if retrained is not model:
                reference = catalogue_scores(retrained, batch.interaction, device, *sizes)
                reference[batch.masked] = -torch.inf
            jsd.append(js_divergence(torch.softmax(scores, -1), torch.softmax(reference, -1)).cpu())
    return {
        "topk": torch.cat(topk).numpy(),
        "hits": hits,
        "targets": targets,
        "member_scores": torch.cat(members).numpy(),
        "non_member_scores": torch.cat(non_members).numpy(),
        "distances": {"jsd": torch.cat(jsd).numpy()} if jsd else {},
    }


def full_sort_evaluation(config, model, data, device):
    """RecBole's full-sort evaluation of ``data`` (its ``Trainer._full_sort_batch_eval``, without the
    trainer): the evaluator's results, and each evaluated row's user and NDCG at the largest K."""
    metrics = list(dict.fromkeys([*UTILITY_METRICS, *config["metrics"]]))
    config = config_with(config, metrics=metrics)
    collector, users = Collector(config), []
    for interaction, history_index, positive_u, positive_i in data:
        scores = catalogue_scores(model, interaction, device, data._dataset.item_num, config["eval_batch_size"])
        scores = scores.float()
        if history_index is not None:
            scores[history_index] = -torch.inf
        collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        users.append(interaction[config["USER_ID_FIELD"]].numpy())
    struct = collector.get_data_struct()
    ranks = struct.get("rec.topk")
    k = largest_k(config)
    per_row = NDCG(config).metric_info(ranks[:, :-1].bool().numpy(), ranks[:, -1].numpy())[:, k - 1]
    results = Evaluator(config).evaluate(struct)
    return {key: float(value) for key, value in results.items()}, np.concatenate(users), per_row
