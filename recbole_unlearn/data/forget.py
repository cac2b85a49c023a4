"""Forget requests: which part of the training split a model must forget.

Only the training split is split; valid and test stay as they are. A request works at one level:
``user`` (all of a user's training interactions), ``item`` (all interactions with an item) or
``interaction`` (single user-item ratings, given as ``user:item``). It names its ids explicitly
(``forget_ids`` or ``forget_file``, raw tokens as in the atomic files) or draws a ``forget_ratio`` of the
level's units (users, items or interactions of the training split; a share, or a whole number of them)
with ``seed``; at user level
``forget_selection`` chooses CURE4Rec's forget sets instead of a random draw: ``core`` (the most active
users by training interactions) or ``edge`` (the least active), ties broken by ``seed``.
"""

from dataclasses import dataclass

import numpy as np

from recbole_unlearn.errors import BadInput

LEVELS = ("user", "item", "interaction")
SELECTIONS = ("random", "core", "edge")
PAIR_SEPARATOR = ":"


def read_id_file(path):
    """One id per line; a BOM, CRLF line ends and blank lines are fine."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return [line.strip() for line in f.read().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"forget_file '{path}' cannot be read: {error}") from error


def level_units(dataset, level):
    """Each row's unit at ``level``: its user, its item, or its (user, item) pair as one integer."""
    inter = dataset.inter_feat
    users = inter[dataset.uid_field].numpy()
    items = inter[dataset.iid_field].numpy()
    if level == "interaction":
        return users.astype(np.int64) * dataset.item_num + items
    return users if level == "user" else items


def is_count(ratio):
    """Whether ``forget_ratio`` is a number of units (a whole number, as scikit-learn's ``test_size``), not a share."""
    return isinstance(ratio, int) and not isinstance(ratio, bool) and ratio >= 1


@dataclass(frozen=True)
class ForgetRequest:
    level: str = "user"
    ratio: float = 0.2
    ids: tuple = ()
    seed: int = 42
    selection: str = "random"
    # Draw among the units earlier requests left (``masks_after``'s ``removed_before``), not among all.
    among_retained: bool = False

    def __post_init__(self):
        if self.level not in LEVELS:
            raise BadInput(f"forget_level must be one of {list(LEVELS)}, got {self.level!r}.")
        if self.selection not in SELECTIONS:
            raise BadInput(f"forget_selection must be one of {list(SELECTIONS)}, got {self.selection!r}.")
        if self.selection != "random" and self.level != "user" and not self.ids:
            raise BadInput(
                f"forget_selection '{self.selection}' picks users by activity (CURE4Rec); it needs "
                f"forget_level: user, got {self.level!r}."
            )
        if not self.ids and not (is_count(self.ratio) or (isinstance(self.ratio, float) and 0 < self.ratio < 1)):
            raise BadInput(
                f"forget_ratio must be a share in (0, 1) or a whole number of units (1, 2, ...), got {self.ratio!r}."
            )
        ids = [str(i).strip() for i in self.ids]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise BadInput(f"forget_ids lists these ids more than once: {duplicates[:10]}.")
        object.__setattr__(self, "ids", tuple(ids))

    @classmethod
    def from_config(cls, config):
        """The request of ``forget_ids`` and ``forget_file`` (explicit ids), else of ``forget_ratio``.

        An explicit but empty list or file is an error: falling back to a random draw would forget
        users nobody asked about.
        """
        if config["forget_ids"] is not None and len(config["forget_ids"]) == 0:
            raise BadInput("forget_ids is empty: list the ids to forget, or leave it unset to draw forget_ratio.")
        ids = list(config["forget_ids"] or [])
        if config["forget_file"]:
            from_file = read_id_file(config["forget_file"])
            if not from_file:
                raise BadInput(f"forget_file '{config['forget_file']}' lists no ids.")
            ids += from_file
        return cls(
            level=config["forget_level"] or "user",
            ratio=config["forget_ratio"],
            ids=tuple(ids),
            seed=config["seed"],
            selection=config["forget_selection"] or "random",
        )

    def masks_after(self, dataset, removed_before=None):
        """(forget, removed) row masks of ``dataset`` once earlier requests removed ``removed_before``: this
        request forgets only what it adds; the retained data excludes both."""
        removed_before = np.zeros(len(dataset.inter_feat), dtype=bool) if removed_before is None else removed_before
        requested = self.mask(dataset, removed_before if self.among_retained else None)
        forget, removed = requested & ~removed_before, requested | removed_before
        if not forget.any():
            raise BadInput(f"The {self.describe()} only names data earlier requests already removed.")
        if removed.all():
            raise BadInput(f"The {self.describe()} and earlier requests together remove the whole training split.")
        return forget, removed

    def describe(self):
        """Level and size of the request, without its ids."""
        if self.ids:
            what = f"{len(self.ids)} ids"
        else:
            what = f"{self.ratio} {self.level}s" if is_count(self.ratio) else f"ratio {self.ratio}"
        if not self.ids and self.selection != "random":
            what += f" of {self.selection} users"
        return f"{self.level}-level forget request, {what}, seed {self.seed}"

    def mask(self, dataset, excluded=None):
        """Boolean mask over ``dataset.inter_feat`` rows (a training split) that are to be forgotten; a ratio
        is drawn among the units of the rows not ``excluded``."""
        units = level_units(dataset, self.level)
        drawable = units if excluded is None else units[~excluded]
        chosen = self.explicit_units(dataset) if self.ids else self._drawn_units(drawable)
        mask = np.isin(units, chosen)
        if not mask.any():
            raise BadInput(f"The {self.describe()} selects no training interaction: the forget set is empty.")
        if mask.all():
            raise BadInput(f"The {self.describe()} covers the whole training split: nothing would be retained.")
        return mask

    def _drawn_units(self, units):
        candidates, activity = np.unique(units, return_counts=True)
        count = self.ratio if is_count(self.ratio) else int(round(self.ratio * len(candidates)))
        if count > len(candidates):
            raise BadInput(
                f"forget_ratio {self.ratio} asks for more {self.level}s than the {len(candidates)} there are."
            )
        if count == 0:
            raise BadInput(
                f"forget_ratio {self.ratio} of {len(candidates)} training {self.level}s is zero: "
                "the forget set is empty."
            )
        generator = np.random.default_rng(self.seed)
        if self.selection == "random":
            return generator.choice(candidates, size=count, replace=False)
        # A seeded shuffle, then a stable sort by activity: equally active users in random order.
        shuffled = generator.permutation(len(candidates))
        most_active_first = shuffled[np.argsort(-activity[shuffled], kind="stable")]
        chosen = most_active_first[:count] if self.selection == "core" else most_active_first[::-1][:count]
        return candidates[chosen]

    def explicit_units(self, dataset):
        """The remapped units of the raw ids the request names (BadInput naming the unknown ones)."""
        known, unknown = [], []
        for token in self.ids:
            unit = self._unit_of(dataset, token)
            (unknown if unit is None else known).append(token if unit is None else unit)
        if unknown:
            raise BadInput(
                f"forget_ids has {len(unknown)} {self.level} id(s) not in the training split of "
                f"'{dataset.dataset_name}': {unknown[:10]}" + (" ..." if len(unknown) > 10 else "")
            )
        return np.array(known, dtype=np.int64)

    def _unit_of(self, dataset, token):
        """The remapped unit id of a raw token, or None if the training split has no such unit."""
        inter = dataset.inter_feat
        if self.level == "interaction":
            user, sep, item = token.partition(PAIR_SEPARATOR)
            user_id = dataset.field2token_id[dataset.uid_field].get(user)
            item_id = dataset.field2token_id[dataset.iid_field].get(item)
            if not sep or user_id is None or item_id is None:
                return None
            pairs = (inter[dataset.uid_field] == user_id) & (inter[dataset.iid_field] == item_id)
            return user_id * dataset.item_num + item_id if bool(pairs.any()) else None
        field = dataset.uid_field if self.level == "user" else dataset.iid_field
        unit = dataset.field2token_id[field].get(token)
        if unit is None or not bool((inter[field] == unit).any()):
            return None
        return unit
