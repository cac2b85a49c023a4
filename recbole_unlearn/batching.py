"""Prompt-length order for RecBole's dataloaders.

A batch of prompts is padded to its longest prompt. Evaluation therefore runs in length order
(``length_sorted``: outputs come back in that order, and ``order`` maps them to dataset rows), and training
draws each batch from a bucket of similar lengths (``length_bucketed``: every sample once per epoch,
buckets and batches shuffled by a generator seeded with the seed, the loader's size and the epoch).
Models without a prompt length field, and ``llm_length_bucket_batches: 0`` for training, keep RecBole's
order. Both wrap RecBole's own loader classes, so its trainer and evaluator use them unchanged.
"""

import numpy as np


def set_epoch(loader, epoch):
    """Make a length-bucketed ``loader`` draw epoch ``epoch``'s order next (a resumed training starts
    mid-way; any other loader is left as it is)."""
    if isinstance(loader, _Bucketed):
        loader.epoch = epoch


def prompt_lengths(dataset):
    """The prompt length of every row, or None for a dataset without prompts."""
    field = getattr(dataset, "prompt_length_field", None)
    if field is None or field not in dataset.inter_feat:
        return None
    return np.asarray(dataset.inter_feat[field])


class _Reordered:
    """A RecBole loader whose ``i``-th sample is dataset row ``order[i]``."""

    order = None

    def collate_fn(self, index):
        return super().collate_fn(self.order[np.asarray(index)])


class _Bucketed(_Reordered):
    epoch = 0

    def __iter__(self):
        generator = np.random.default_rng([self.config["seed"], self.sample_size, self.epoch])
        self.order = bucketed_order(self.lengths, self.global_batch_size, self.bucket_batches, generator)
        self.epoch += 1
        return super().__iter__()


_classes = {}


def _subclass(mixin, loader_class):
    key = (mixin, loader_class)
    if key not in _classes:
        _classes[key] = type(mixin.__name__.strip("_") + loader_class.__name__, (mixin, loader_class), {})
    return _classes[key]


def length_sorted(loader):
    """``loader``'s samples, shortest prompt first (itself for a model without prompts)."""
    lengths = prompt_lengths(loader._dataset)
    if lengths is None or isinstance(loader, _Reordered):
        return loader
    sorted_loader = _subclass(_Reordered, type(loader))(loader.config, loader._dataset, loader._sampler, shuffle=False)
    sorted_loader.order = np.argsort(lengths, kind="stable")
    return sorted_loader


def length_bucketed(loader):
    """A shuffled training ``loader`` whose batches come from buckets of similar prompt lengths (itself when
    there are no prompts, or ``llm_length_bucket_batches`` is 0)."""
    bucket_batches = loader.config["llm_length_bucket_batches"]
    lengths = prompt_lengths(loader._dataset)
    if not bucket_batches or lengths is None or not loader.shuffle or isinstance(loader, _Reordered):
        return loader
    bucketed = _subclass(_Bucketed, type(loader))(loader.config, loader._dataset, loader._sampler, shuffle=False)
    # Positions are read in order; across ranks, a global batch is config's train_batch_size.
    bucketed.lengths, bucketed.bucket_batches = lengths, bucket_batches
    bucketed.global_batch_size = loader.config["train_batch_size"]
    # RecBole reshuffles a multi-process epoch through ``shuffle``; the order does that here.
    bucketed.shuffle = True
    return bucketed


def bucketed_order(lengths, batch_size, bucket_batches, generator):
    """A permutation of the rows: sorted by length (ties at random), cut into buckets of ``bucket_batches``
    batches, shuffled within each bucket, cut into batches, and the full batches shuffled (the partial one
    stays last)."""
    by_length = np.lexsort((generator.random(len(lengths)), lengths))
    bucket = batch_size * bucket_batches
    for start in range(0, len(by_length), bucket):
        generator.shuffle(by_length[start : start + bucket])
    full = len(by_length) // batch_size
    batches = by_length[: full * batch_size].reshape(full, batch_size)[generator.permutation(full)]
    return np.concatenate([batches.reshape(-1), by_length[full * batch_size :]])


def restore_order(values, order):
    """Rows of the array ``values`` (in loader order) put back in dataset order."""
    if order is None:
        return values
    restored = np.empty_like(values)
    restored[order] = values
    return restored
