"""Every random state a training epoch draws from, saved and restored, so a resumed training reproduces
an uninterrupted one: torch's (and each GPU's), the training loader's generator (RecBole's shuffle),
numpy's and Python's."""

import random

import numpy as np
import torch


def random_states(loader):
    """Every random state an epoch draws from, as (tensors, JSON): torch's (and each GPU's), the training
    loader's generator (RecBole's shuffle), numpy's and Python's."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{index}": state for index, state in enumerate(torch.cuda.get_rng_state_all())})
    if getattr(loader, "generator", None) is not None:
        tensors["loader"] = loader.generator.get_state()
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return tensors, {"numpy": [name, keys.tolist(), position, has_gauss, gauss], "python": random.getstate()}


def set_random_states(loader, tensors, rest):
    """The inverse of ``random_states``."""
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[f"cuda.{index}"] for index in range(torch.cuda.device_count())])
    if "loader" in tensors:
        loader.generator.set_state(tensors["loader"])
    name, keys, position, has_gauss, gauss = rest["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    version, state, python_gauss = rest["python"]
    random.setstate((version, tuple(state), python_gauss))
