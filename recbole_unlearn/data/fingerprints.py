"""Fingerprints of data in raw tokens: equal fingerprints, same data, whatever the id remapping."""

import hashlib


def raw_users_items(dataset):
    """The raw user and item tokens of every row of ``dataset``."""
    inter = dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, inter[dataset.uid_field].numpy())
    items = dataset.id2token(dataset.iid_field, inter[dataset.iid_field].numpy())
    return users, items


def interaction_tokens(dataset):
    """``user:item:label`` in raw tokens for every row of ``dataset`` (``user:item`` for a ranking model's
    data, which has no label: every row is an interaction)."""
    users, items = raw_users_items(dataset)
    if dataset.label_field not in dataset.inter_feat:
        return [f"{user}:{item}" for user, item in zip(users, items)]
    labels = dataset.inter_feat[dataset.label_field].numpy()
    return [f"{user}:{item}:{label:g}" for user, item, label in zip(users, items, labels)]


def tokens_sha256(dataset):
    """SHA-256 of the sorted ``interaction_tokens`` of ``dataset``: the same rows in any order, the same hash."""
    return hashlib.sha256("\n".join(sorted(interaction_tokens(dataset))).encode()).hexdigest()


def split_sha256(*parts):
    """SHA-256 of a split: raw user, item and label of every row of each part (dataloaders), in order."""
    digest = hashlib.sha256()
    for data in parts:
        digest.update("\n".join(interaction_tokens(data._dataset)).encode())
        digest.update(b"\x00")
    return digest.hexdigest()
