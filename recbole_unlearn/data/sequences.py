"""A sequential model's training samples without removed interactions, as RecBole builds them.

RecBole's ``SequentialDataset`` turns each user's time-ordered interactions ``<i0, i1, ..., in>`` into
samples ``<i0..ik-1> | ik`` (the history, at most ``MAX_ITEM_LIST_LENGTH`` items, and the target); the
first interaction is history only. A removed interaction leaves every training sample: as a target (its
row goes) and as history (the histories after it are rebuilt from the user's retained interactions, so an
older retained item may move into the window). A sample whose history becomes empty is dropped, as
RecBole drops a user's first interaction. Valid and test samples are not touched.
"""

import numpy as np
import torch

from recbole_unlearn.errors import BadInput


def is_sequential(dataset):
    return hasattr(dataset, "item_list_length_field")


def user_sequences(dataset):
    """Per user, the rows of the training samples in order, and the user's training sequence of each
    field (position 0 is the first sample's one history item; position k is row k-1's target)."""
    inter = dataset.inter_feat
    users = inter[dataset.uid_field].numpy()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    if len(starts) != len(np.unique(users)):
        raise BadInput("A sequential training split must keep each user's samples together, in time order.")
    lengths = inter[dataset.item_list_length_field].numpy()
    if np.any(lengths[starts] != 1):
        raise BadInput(
            "Each user's first training sample must have a history of one item (eval_args order: TO); "
            "the training sequences cannot be rebuilt otherwise."
        )
    fields = list_fields(dataset)
    for start, end in zip(starts, np.r_[starts[1:], len(users)]):
        rows = np.arange(start, end)
        sequence = {
            field: torch.cat([inter[list_field][start, :1], inter[field][rows]]) for field, list_field in fields.items()
        }
        yield users[start], rows, sequence


def list_fields(dataset):
    """Each field with a history list, and that list's field (``item_id`` -> ``item_id_list``, ...)."""
    return {
        field: getattr(dataset, f"{field}_list_field")
        for field in dataset.inter_feat.columns
        if hasattr(dataset, f"{field}_list_field")
    }


def check_no_emptied_sequence(dataset, forget, removed, request):
    """An interaction-level ``request`` (a ``ForgetRequest``) must leave each user whose samples it forgets
    (``forget``) at least one sample of a sequential training split (``removed``: also earlier requests'):
    removing all of them forgets the user, which ``forget_level: user`` says."""
    users = dataset.inter_feat[dataset.uid_field].numpy()
    emptied = np.setdiff1d(np.unique(users[forget]), users[~removed])
    if request.level == "interaction" and len(emptied):
        tokens = dataset.id2token(dataset.uid_field, emptied[:5])
        raise BadInput(
            f"The {request.describe()} removes every training sample of {len(emptied)} user(s) (raw ids "
            f"{', '.join(map(str, tokens))}{' ...' if len(emptied) > 5 else ''}): their training sequences would be "
            "empty. Forget those users with forget_level: user."
        )


def retained_samples(dataset, rows, removed, removed_first_items=()):
    """``dataset`` (a sequential training split) restricted to ``rows``, none of them ``removed`` (a row
    mask of removed targets), with histories rebuilt from each user's retained interactions.
    ``removed_first_items``: items removed wherever they occur (an item-level request), also from the
    history-only first position."""
    inter, max_length = dataset.inter_feat, dataset.config["MAX_ITEM_LIST_LENGTH"]
    selected = np.zeros(len(inter), dtype=bool)
    selected[rows] = True
    if (selected & removed).any():
        raise BadInput("A retained sample's target is a removed interaction.")
    fields = list_fields(dataset)
    item_field = dataset.iid_field
    kept_rows, histories = [], []
    for _, user_rows, sequence in user_sequences(dataset):
        retained = np.r_[not np.isin(sequence[item_field][0].item(), removed_first_items), ~removed[user_rows]]
        retained_positions = np.flatnonzero(retained)
        for position, row in enumerate(user_rows, start=1):
            if not selected[row]:
                continue
            before = retained_positions[retained_positions < position][-max_length:]
            if len(before):
                kept_rows.append(row)
                histories.append((sequence, before))
    kept = inter[np.asarray(kept_rows, dtype=np.int64)]
    lengths = torch.tensor([len(before) for _, before in histories], dtype=torch.long)
    kept.interaction[dataset.item_list_length_field] = lengths
    for field, list_field in fields.items():
        values = torch.zeros_like(kept[list_field])
        for index, (sequence, before) in enumerate(histories):
            values[index, : len(before)] = sequence[field][torch.from_numpy(before)]
        kept.interaction[list_field] = values
    return dataset.copy(kept)
