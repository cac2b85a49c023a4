"""How a sharded method splits the training split into shards: SISA's random users, or RecEraser's
balanced partitions (Chen et al., WWW 2022), users or interactions grouped by their collaborative signal
into shards of at most ``cap`` times the mean shard size.

The vectors clustered are TruncatedSVD factors of the binary training user-item matrix, which every
RecBole model's data has; RecEraser clusters a pretrained BPR's embeddings.
"""

import hashlib

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from recbole_unlearn.errors import BadInput

PARTITIONS = ("user", "interaction", "random")


def user_item_matrix(train_dataset, rows=None):
    """The binary users x items matrix of the training rows (``rows``: only those)."""
    users = train_dataset.inter_feat[train_dataset.uid_field].numpy()
    items = train_dataset.inter_feat[train_dataset.iid_field].numpy()
    if rows is not None:
        users, items = users[rows], items[rows]
    matrix = sp.csr_matrix(
        (np.ones(len(users)), (users, items)), shape=(train_dataset.user_num, train_dataset.item_num)
    )
    matrix.data[:] = 1.0  # a repeated user-item pair counts once
    return matrix


def svd_projection(matrix, dimensions, seed):
    """(V S^-1/2, V S^1/2) of ``matrix``'s rank-``dimensions`` TruncatedSVD X ~ U S V^T: a row of X times the
    first gives the user's factors U S^1/2; the second holds the items' factors."""
    svd = TruncatedSVD(dimensions, random_state=seed).fit(matrix)
    scale = np.sqrt(svd.singular_values_)
    return svd.components_.T / scale, svd.components_.T * scale


def interaction_factors(train_dataset, dimensions, seed):
    """(user factors, item factors) of the training matrix's SVD (``svd_projection``)."""
    matrix = user_item_matrix(train_dataset)
    to_user_factors, item_factors = svd_projection(matrix, dimensions, seed)
    return np.asarray(matrix @ to_user_factors), item_factors


def balanced_kmeans(vectors, n_clusters, cap_share, iterations, seed):
    """RecEraser's balanced k-means: each iteration sorts every (point, centroid) distance and assigns
    points greedily to their nearest centroid that holds fewer than ``cap_share * n / k`` points, then moves
    each centroid to its points' mean. Returns each point's cluster."""
    count = len(vectors)
    cap = int(np.ceil(cap_share * count / n_clusters))
    centroids = vectors[np.random.default_rng(seed).choice(count, n_clusters, replace=False)]
    for _ in range(iterations):
        distances = ((vectors[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
        labels, sizes, assigned = np.full(count, -1), np.zeros(n_clusters, dtype=np.int64), 0
        for flat in np.argsort(distances, axis=None, kind="stable"):
            point, cluster = divmod(int(flat), n_clusters)
            if labels[point] < 0 and sizes[cluster] < cap:
                labels[point], sizes[cluster], assigned = cluster, sizes[cluster] + 1, assigned + 1
                if assigned == count:
                    break
        centroids = np.stack([vectors[labels == c].mean(0) if sizes[c] else centroids[c] for c in range(n_clusters)])
    return labels


def check_partition(prefix, kind, n_shards, cap_share, users=None):
    """Refuse bad partition keys of the method ``prefix``, naming them; ``users``: how many there are to
    share out, where known."""
    if kind not in PARTITIONS:
        raise BadInput(f"{prefix}_partition must be one of {list(PARTITIONS)}, got {kind!r}.")
    if n_shards < 1 or (users is not None and n_shards > users):
        allowed = "at least 1" if users is None else f"between 1 and {users} (the users: a shard holds at least one)"
        raise BadInput(f"{prefix}_n_shards must be {allowed}, got {n_shards}.")
    if kind != "random" and cap_share < 1:
        raise BadInput(f"{prefix}_cap must be at least 1 (shards of at most cap * n / k), got {cap_share}.")


def partition(train_dataset, kind, n_shards, cap_share, dimensions, iterations, seed, prefix):
    """Each training row's shard, by a ``random``, ``user`` or ``interaction`` partition."""
    if kind == "random":
        return random_partition(train_dataset, n_shards, seed, prefix)
    return balanced_partition(train_dataset, kind, n_shards, cap_share, dimensions, iterations, seed, prefix)


def random_partition(train_dataset, n_shards, seed, prefix="sisa"):
    """SISA's shards: each user's training interactions go to one of ``n_shards`` shards (seeded)."""
    users = train_dataset.inter_feat[train_dataset.uid_field].numpy()
    unique_users = np.unique(users)
    check_partition(prefix, "random", n_shards, None, len(unique_users))
    shuffled = np.random.default_rng(seed).permutation(unique_users)
    shard_of_user = np.zeros(train_dataset.user_num, dtype=np.int64)
    shard_of_user[shuffled] = np.arange(len(shuffled)) % n_shards
    return shard_of_user[users]


def balanced_partition(train_dataset, kind, n_shards, cap_share, dimensions, iterations, seed, prefix="receraser"):
    """Each training row's shard: its user's cluster (``user``), or its own cluster of user and item factors
    side by side (``interaction``); a ``random`` partition is ``random_partition``. ``prefix``: the
    method whose keys set them (named by errors)."""
    users = train_dataset.inter_feat[train_dataset.uid_field].numpy()
    unique_users = np.unique(users)
    check_partition(prefix, kind, n_shards, cap_share, len(unique_users))
    user_factors, item_factors = interaction_factors(train_dataset, dimensions, seed)
    if kind == "user":
        labels = balanced_kmeans(user_factors[unique_users], n_shards, cap_share, iterations, seed)
        shard_of_user = np.zeros(train_dataset.user_num, dtype=np.int64)
        shard_of_user[unique_users] = labels
        shards = shard_of_user[users]
    else:  # interaction
        items = train_dataset.inter_feat[train_dataset.iid_field].numpy()
        vectors = np.concatenate([user_factors[users], item_factors[items]], axis=1)
        shards = balanced_kmeans(vectors, n_shards, cap_share, iterations, seed)
    empty = sorted(set(range(n_shards)) - set(np.unique(shards).tolist()))
    if empty:
        raise BadInput(f"The {kind} partition left shard(s) {empty} empty: lower {prefix}_n_shards.")
    return shards


def assignment_sha256(shards):
    """SHA-256 of each training row's shard: what decides which shard models a request rebuilds."""
    return hashlib.sha256(np.asarray(shards, dtype=np.int64).tobytes()).hexdigest()
