"""RecBole dataloaders for the forget, retain and shard subsets of a training split."""

from recbole.data.utils import get_dataloader

from recbole_unlearn.batching import length_bucketed
from recbole_unlearn.config import config_with


def train_loader(config, dataset, batch_size=None):
    """Shuffled training batches of ``dataset`` (a subset of the training split), by prompt length."""
    if batch_size:
        config = config_with(config, train_batch_size=batch_size)
    return length_bucketed(get_dataloader(config, "train")(config, dataset, None, shuffle=True))


def eval_loader(config, dataset):
    """Labeled evaluation batches of ``dataset`` in a fixed order (RecBole's test-phase loader)."""
    return get_dataloader(config, "test")(config, dataset, None, shuffle=False)
