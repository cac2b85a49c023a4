"""LLMRecDataset: RecBole's Dataset plus each interaction's history and its tokenized prompt."""

import numpy as np
from recbole.data.dataset import Dataset
from recbole.utils import FeatureSource, FeatureType

from recbole_unlearn.errors import BadInput
from recbole_unlearn.model.backbone import BACKBONES, backbone_kind, load_tokenizer
from recbole_unlearn.model.prompt import PromptTemplate
from recbole_unlearn.model.tokenizer import train_word_tokenizer


def previous_positions(users, times, history_length):
    """For each row, the rows of the same user strictly earlier in time, oldest first (at most K).

    Rows are ordered by (user, time, file order), so ties in time are broken by the order of the
    atomic file, and a row never sees another row with the same timestamp.
    """
    order = np.lexsort((np.arange(len(users)), times, users))
    sorted_users, sorted_times = users[order], times[order]
    group_start = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    group_end = np.r_[group_start[1:], len(order)]
    history = [None] * len(order)
    for start, end in zip(group_start, group_end):
        group_times = sorted_times[start:end]
        first_same_time = np.searchsorted(group_times, group_times, side="left")
        for offset, stop in enumerate(first_same_time):
            history[order[start + offset]] = order[start + max(0, stop - history_length) : start + stop]
    return history


class LLMRecDataset(Dataset):
    history_item_field = "history_item_id"
    history_rating_field = "history_rating"
    prompt_field = "prompt_ids"
    prompt_length_field = "prompt_length"

    def _load_data(self, token, dataset_path):
        super()._load_data(token, dataset_path)
        self._add_history_fields()
        # Checked before any processing, so a bad template fails at start-up.
        self.prompt_template = PromptTemplate(self.config, self)

    def _add_history_fields(self):
        """The user's previous K rated items and ratings, computed over all loaded interactions.

        This runs before filtering (e.g. ``val_interval``), so a sample's history may reach back
        before the window of samples, as in the paper.
        """
        for role, field in (("TIME_FIELD", self.time_field), ("RATING_FIELD", self.config["RATING_FIELD"])):
            if field is None or field not in self.inter_feat:
                raise BadInput(
                    f"LLMRecDataset builds each user's history from the {role} '{field}', which "
                    f"dataset '{self.dataset_name}' does not load; add it to load_col['inter']."
                )
        k = self.config["history_length"]
        inter = self.inter_feat
        positions = previous_positions(inter[self.uid_field].values, inter[self.time_field].values, k)
        items = inter[self.iid_field].values
        ratings = inter[self.config["RATING_FIELD"]].values.astype(np.float64)
        inter[self.history_item_field] = [items[p].astype(str) for p in positions]
        inter[self.history_rating_field] = [ratings[p] for p in positions]
        self.set_field_property(self.history_item_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, k)
        self.set_field_property(self.history_rating_field, FeatureType.FLOAT_SEQ, FeatureSource.INTERACTION, k)

    def _init_alias(self):
        super()._init_alias()
        if self.history_item_field not in self.alias["item_id"]:
            raise BadInput(
                f"LLMRecDataset needs `alias_of_item_id: [{self.history_item_field}]` so that history "
                "items share the item id space (properties/model/LLMRec.yaml sets it)."
            )

    def _data_processing(self):
        super()._data_processing()
        self._add_prompt_fields()

    def _add_prompt_fields(self):
        """Render and tokenize every prompt once; batches later only trim the padding."""
        self.llm_kind = backbone_kind(self.config)
        if self.config["llm_path"]:
            self.tokenizer = load_tokenizer(self.config["llm_path"])
        else:
            self.tokenizer = train_word_tokenizer(self.prompt_template.vocabulary_text())
        encoded = self._encode_within(self.config["prompt_max_length"])
        lengths = np.array([len(ids) for ids in encoded])
        self.inter_feat[self.prompt_field] = [np.asarray(ids, dtype=np.int64) for ids in encoded]
        self.inter_feat[self.prompt_length_field] = lengths
        self.set_field_property(self.prompt_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, int(lengths.max()))
        self.set_field_property(self.prompt_length_field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)
        self.logger.info(
            f"Tokenized {len(encoded)} prompts for a {self.llm_kind} backbone: mean {lengths.mean():.1f} "
            f"tokens, max {lengths.max()}."
        )

    def _encode_within(self, max_length):
        """Token ids of every prompt, at most ``max_length`` each.

        A prompt that is too long loses its oldest history items, one at a time, rather than its end:
        the end holds the question and, for causal and masked backbones, the answer slot.
        """
        suffix = BACKBONES[self.llm_kind].prompt_suffix(self.tokenizer)
        inter = self.inter_feat

        def encode(part):
            texts = self.prompt_template.render(part, self.history_item_field, self.history_rating_field)
            return self.tokenizer([text + suffix for text in texts])["input_ids"]

        encoded = encode(inter)
        too_long = np.flatnonzero([len(ids) > max_length for ids in encoded])
        if not len(too_long):
            return encoded
        shortened, dropped = len(too_long), np.zeros(len(inter), dtype=np.int64)
        histories = inter[self.history_item_field].values
        while len(too_long):
            exhausted = [row for row in too_long if dropped[row] >= len(histories[row])]
            if exhausted:
                raise BadInput(
                    f"The prompt of interaction {exhausted[0]} has {len(encoded[exhausted[0]])} tokens without "
                    f"any history, more than prompt_max_length={max_length}; raise prompt_max_length."
                )
            dropped[too_long] += 1
            part = inter.iloc[too_long].copy()
            for field in (self.history_item_field, self.history_rating_field):
                part[field] = [history[drop:] for history, drop in zip(part[field].values, dropped[too_long])]
            for row, ids in zip(too_long, encode(part)):
                encoded[row] = ids
            too_long = too_long[[len(encoded[row]) > max_length for row in too_long]]
        self.logger.warning(
            f"{shortened} prompts exceeded prompt_max_length={max_length}: they show fewer history "
            f"items (up to {dropped.max()} of the oldest dropped)."
        )
        return encoded

    def prompt_text(self, index):
        """The prompt of interaction row ``index`` as text (for inspection and tests)."""
        length = int(self.inter_feat[self.prompt_length_field][index])
        ids = self.inter_feat[self.prompt_field][index][:length]
        return self.tokenizer.decode(ids, skip_special_tokens=True)
