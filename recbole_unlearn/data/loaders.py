"""RecBole dataloaders for the forget, retain and shard subsets of a training split."""

import numpy as np
from recbole.data.utils import get_dataloader
from recbole.sampler import Sampler

from recbole_unlearn.batching import length_bucketed
from recbole_unlearn.config import config_with


def negative_sampler(config, seen):
    """RecBole's training sampler drawing, for each user, items that user has no interaction with in
    ``seen`` (a dataset); None where the model trains without sampled negatives."""
    args = config["train_neg_sample_args"]
    if not args or args.get("distribution") in (None, "none") or not args.get("sample_num"):
        return None
    return Sampler(["train"], [seen], args["distribution"], args.get("alpha", 1.0)).set_phase("train")


def train_loader(config, dataset, batch_size=None, seen=None):
    """Shuffled training batches of ``dataset`` (a subset of the training split), by prompt length; sampled
    negatives (for a model trained with them) avoid each user's items in ``seen`` (default: ``dataset``,
    so that removed interactions shape nothing, not even which items count as negatives)."""
    if batch_size:
        config = config_with(config, train_batch_size=batch_size)
    sampler = negative_sampler(config, dataset if seen is None else seen)
    return length_bucketed(get_dataloader(config, "train")(config, dataset, sampler, shuffle=True))


def eval_loader(config, dataset):
    """Labeled evaluation batches of ``dataset`` in a fixed order (RecBole's test-phase loader)."""
    return get_dataloader(config, "test")(config, dataset, None, shuffle=False)


def users_eval_loader(config, loader, users):
    """``loader`` (a valid or test loader) restricted to the rows of ``users`` (their ids), batched alike;
    None where those users have no row in it."""
    dataset = loader._dataset
    rows = np.flatnonzero(np.isin(dataset.inter_feat[dataset.uid_field].numpy(), users))
    if not len(rows):
        return None
    return type(loader)(config, dataset.copy(dataset.inter_feat[rows]), loader._sampler, shuffle=False)
