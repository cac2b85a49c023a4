"""Interaction -> prompt text, from a ``str.format`` template whose names are dataset fields.

A name in the template is, in order: a key of ``prompt_fields`` (a dataset field shown through an
optional value map, e.g. gender M -> "male"), a user or item field of the dataset shown as its raw text,
or ``history`` (the user's previous items, each rendered with ``history_item_format``, where ``rating``
is that item's rating).
"""

from string import Formatter

import numpy as np
from recbole.utils import FeatureSource, FeatureType

from recbole_unlearn.errors import BadInput

HISTORY = "history"
RATING = "rating"
NO_HISTORY = "none"
MISSING_VALUE = "unknown"
ID_SOURCES = {
    FeatureSource.USER: FeatureSource.USER_ID,
    FeatureSource.USER_ID: FeatureSource.USER_ID,
    FeatureSource.ITEM: FeatureSource.ITEM_ID,
    FeatureSource.ITEM_ID: FeatureSource.ITEM_ID,
}


def template_names(template):
    return [name for _, name, _, _ in Formatter().parse(template) if name]


def format_rating(value):
    return f"{value:g}"


class PromptTemplate:
    """Checks a template against a dataset's fields, then renders prompts for its interactions."""

    def __init__(self, config, dataset):
        self.template = config["prompt_template"]
        self.item_format = config["history_item_format"]
        self.separator = config["history_separator"]
        self.answer_words = list(config["answer_words"])
        self.dataset = dataset
        prompt_fields = config["prompt_fields"] or {}
        self.sources = {name: (spec["source"], spec.get("values")) for name, spec in prompt_fields.items()}

        self.names = [name for name in template_names(self.template) if name != HISTORY]
        self.uses_history = HISTORY in template_names(self.template)
        self.item_names = [name for name in template_names(self.item_format) if name != RATING]
        for name in self.names:
            self._source_field(name, "prompt_template")
        for name in self.item_names:
            if self._id_source(self._source_field(name, "history_item_format")) != FeatureSource.ITEM_ID:
                raise BadInput(f"history_item_format names field '{name}', which is not an item field.")

    def _source_field(self, name, key):
        field = self.sources.get(name, (name, None))[0]
        if field not in self.dataset.field2type or self._id_source(field) is None:
            available = sorted(f for f in self.dataset.field2type if self._id_source(f) is not None)
            raise BadInput(
                f"{key} names field '{name}'"
                + (f" (source field '{field}')" if field != name else "")
                + f", which dataset '{self.dataset.dataset_name}' does not have. "
                f"User and item fields loaded: {available}. "
                "Load it with `load_col`, or define it in `prompt_fields`."
            )
        return field

    def _id_source(self, field):
        return ID_SOURCES.get(self.dataset.field2source.get(field))

    def _text_table(self, name):
        """Text of ``name`` for every id of the user or item it describes (index = remapped id)."""
        field, values = self.sources.get(name, (name, None))
        dataset = self.dataset
        id_source = self._id_source(field)
        id_field = dataset.uid_field if id_source == FeatureSource.USER_ID else dataset.iid_field
        if field == id_field:
            column = np.arange(dataset.num(id_field))
        else:
            feat = dataset.user_feat if id_source == FeatureSource.USER_ID else dataset.item_feat
            column = feat[field].values
        if dataset.field2type[field] == FeatureType.TOKEN:
            column = column.astype(np.int64)
        tokens = dataset.field2id_token[field]
        if dataset.field2type[field] == FeatureType.TOKEN_SEQ:
            raw = [" ".join(tokens[ids]) for ids in column]
        else:
            raw = list(tokens[column])
        values = values or {}
        text = [MISSING_VALUE if not r or r == "[PAD]" else str(values.get(r, r)) for r in raw]
        return id_field, np.array(text, dtype=object)

    def render(self, inter_feat, history_item_field, history_rating_field):
        """One prompt per row of the (remapped) interaction DataFrame ``inter_feat``."""
        columns = {}
        for name in self.names:
            id_field, table = self._text_table(name)
            columns[name] = table[inter_feat[id_field].values]
        if self.uses_history:
            item_tables = {name: self._text_table(name)[1] for name in self.item_names}
            columns[HISTORY] = [
                self.separator.join(
                    self.item_format.format(
                        **{name: table[item] for name, table in item_tables.items()},
                        **{RATING: format_rating(rating)},
                    )
                    for item, rating in zip(items, ratings)
                )
                or NO_HISTORY
                for items, ratings in zip(
                    inter_feat[history_item_field].values, inter_feat[history_rating_field].values
                )
            ]
        return [
            self.template.format(**{name: column[row] for name, column in columns.items()})
            for row in range(len(inter_feat))
        ]

    def vocabulary_text(self):
        """Every word a prompt or an answer can contain; built from metadata, not from interactions."""
        lines = [
            Formatter().vformat(self.template, (), _Blank()),
            Formatter().vformat(self.item_format, (), _Blank()),
            self.separator,
            NO_HISTORY,
            MISSING_VALUE,
            " ".join(f"{word}." for word in self.answer_words),
            " ".join(format_rating(r) for r in np.arange(0, 10.5, 0.5)),
        ]
        for name in dict.fromkeys(self.names + self.item_names):
            lines.extend(self._text_table(name)[1])
        return lines


class _Blank(dict):
    def __missing__(self, key):
        return ""
