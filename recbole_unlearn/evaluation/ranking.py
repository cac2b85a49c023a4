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

*Holdout queries*, as many (seeded), are built alike from users with nothing forgotten (a general model:
such users; a sequential model: such users' training samples); only their top-K is kept. The signal
check compares the Original's distance to Retrain on them with its distance on the forget queries.

Longer than 250 lines: the queries and the pass over them share one batch layout (``QueryBatch``).
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
    holdout: list = field(default_factory=list)  # QueryBatches of users with nothing forgotten

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
        sequential = is_sequential(train_dataset)
        if sequential:
            query_users = users[forget_rows]
            query_targets = [np.array([item]) for item in items[forget_rows]]
        else:
            query_users = np.unique(users[forget_rows])
            forgotten = np.zeros(len(users), dtype=bool)
            forgotten[forget_rows] = True
            query_targets = [items[(users == user) & forgotten] for user in query_users]
        non_members = [
            never_seen_sample(seen.get(user, set()), len(targets), train_dataset.item_num, generator)
            for user, targets in zip(query_users, query_targets)
        ]
        batches = query_batches(train_dataset, forget_rows if sequential else query_users, removed_mask, batch_size)
        for batch, chosen in zip(batches, batch_ranges(len(query_users), batch_size)):
            batch.targets = pairs([query_targets[q] for q in chosen])
            batch.non_members = pairs([non_members[q] for q in chosen])
        # Drawn after the non-members, which stay as they were drawn before holdout queries existed.
        untouched = ~np.isin(users, users[removed_mask])
        candidates = np.flatnonzero(untouched) if sequential else np.unique(users[untouched])
        drawn = np.sort(generator.choice(candidates, size=min(len(query_users), len(candidates)), replace=False))
        return cls(batches, query_users, query_batches(train_dataset, drawn, removed_mask, batch_size))


def batch_ranges(count, batch_size):
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def query_batches(train_dataset, queries, removed_mask, batch_size):
    """QueryBatches without targets of ``queries``: a sequential model's training rows (their histories
    as trained on; nothing masked) or a general model's users (each user's retained training items
    masked: they fill every model's top-K)."""
    empty = pairs([])
    if is_sequential(train_dataset):
        return [
            QueryBatch(train_dataset.inter_feat[queries[chosen.start : chosen.stop]], empty, empty, empty)
            for chosen in batch_ranges(len(queries), batch_size)
        ]
    uid, iid = train_dataset.uid_field, train_dataset.iid_field
    users, items = train_dataset.inter_feat[uid].numpy(), train_dataset.inter_feat[iid].numpy()
    retained = ~removed_mask
    return [
        QueryBatch(
            Interaction({uid: torch.from_numpy(queries[chosen.start : chosen.stop])}),
            pairs([items[(users == user) & retained] for user in queries[chosen.start : chosen.stop]]),
            empty,
            empty,
        )
        for chosen in batch_ranges(len(queries), batch_size)
    ]


def pairs(items_per_query):
    """(query index, item) arrays of a batch's per-query item lists."""
    queries = np.repeat(np.arange(len(items_per_query)), [len(items) for items in items_per_query])
    items = np.concatenate(items_per_query) if len(items_per_query) else np.array([], dtype=np.int64)
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
    holdout_topk: np.ndarray = None  # [holdout queries, K] each holdout query's top-K items


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
    topk, hits, targets, members, non_members, jsd, holdout_topk = [], 0, 0, [], [], [], []
    for batch in queries.holdout:
        scores = catalogue_scores(model, batch.interaction, device, *sizes)
        scores[batch.masked] = -torch.inf
        holdout_topk.append(torch.topk(scores, k, dim=-1).indices.cpu())
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
        "holdout_topk": torch.cat(holdout_topk).numpy() if holdout_topk else np.empty((0, k), dtype=np.int64),
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
