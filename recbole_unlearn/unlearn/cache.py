"""Trained models kept on disk under a key of everything that determines them.

The Original, the Retrain model and SISA's shards trained before a request are trained once per key:
comparing several methods, or running again, loads them. A build that is interrupted resumes from the
training state it keeps in ``partial/`` (its time before the interruption is not counted). A build is
never counted in the time of the unlearning method that asked for it. A cached model's evaluation
outputs are kept beside its checkpoint (``outputs/``), so a warm run does not evaluate it again.
"""

import json
import os
import shutil

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from recbole_unlearn import distributed
from recbole_unlearn.checkpoint import save_checkpoint
from recbole_unlearn.evaluation.cost import CostMeter, not_counted
from recbole_unlearn.evaluation.outputs import SplitOutputs
from recbole_unlearn.provenance import code_sha256, config_sha256, library_versions
from recbole_unlearn.unlearn.method import config_prefixes


def config_key(config, split_sha256, *extra):
    """SHA-256 of what determines an Original or Retrain model: the configuration, the data's split, our
    code, the libraries' versions, the batches' launch, and ``extra``. Where the data lives is not in it
    (``data_path`` is a runtime key): its content is."""
    versions = json.dumps(library_versions(), sort_keys=True)
    return config_sha256(
        config, split_sha256, code_sha256(), versions, batches_launch(config), *extra, ignore_prefixes=config_prefixes()
    )


def batches_launch(config):
    """What of a run's launch decides its training batches: one process shuffles with RecBole's generator;
    launched ranks (even one) take every world_size-th sample of a distributed sampler's permutation. How
    the ranks are spread over machines (``nproc``, ``offset``) does not change them."""
    return "single process" if config["single_spec"] else f"distributed over {config['world_size']} ranks"


class ModelCache:
    def __init__(self, directory, prefix):
        self.directory = directory
        self.prefix = prefix
        # Name -> (where the build now running keeps its resumable training state, its cache key).
        self.building = {}

    def path(self, name, key):
        return os.path.join(self.directory, f"{self.prefix}-{name}-{key[:16]}.safetensors")

    def building_state(self, name):
        """(where the training of ``name`` keeps its state, the cache key it is built for) while the cache
        builds it, else (None, None)."""
        return self.building.get(name, (None, None))

    def get(self, name, key, build, load, provenance):
        """(model, cost, path): loaded with ``load(path)`` -> (model, cost) if cached, else ``build()``
        measured and saved with ``provenance``."""
        path = self.path(name, key)
        if distributed.on_main(lambda: os.path.isfile(path)):
            model, cost = load(path)
            return model, cost, path
        resume_dir = os.path.join(self.directory, "partial", os.path.basename(path).removesuffix(".safetensors"))
        self.building[name] = (resume_dir, key)
        try:
            with not_counted(), CostMeter() as meter:
                model = build()
        finally:
            del self.building[name]
        cost = meter.summary()
        save_checkpoint(model, path, {**provenance, "cost": cost})
        if distributed.is_main():
            shutil.rmtree(resume_dir, ignore_errors=True)
        return model, cost, path


def outputs_path(checkpoint_file, key):
    """Where the evaluation outputs of a cached model are kept: ``outputs/`` beside its checkpoint."""
    directory, name = os.path.split(checkpoint_file)
    return os.path.join(directory, "outputs", f"{name.removesuffix('.safetensors')}-{key[:16]}.safetensors")


def save_outputs(path, outputs, answers=True):
    """A model's ``SplitOutputs`` per split (with ``answers``, its kept answers too), as tensors; atomically."""
    tensors, metadata = {}, {}
    for split, split_outputs in outputs.items():
        for name in ("labels", "scores", "yes_no", "users"):
            if getattr(split_outputs, name) is not None:
                tensors[f"{split}.{name}"] = torch.from_numpy(np.ascontiguousarray(getattr(split_outputs, name)))
        for name, values in split_outputs.vocab_distances.items():
            tensors[f"{split}.distance.{name}"] = torch.from_numpy(np.ascontiguousarray(values))
        if answers and split_outputs.answers is not None:
            tensors[f"{split}.answers"] = torch.cat(split_outputs.answers)
            metadata[f"{split}.answer_batches"] = json.dumps([len(batch) for batch in split_outputs.answers])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(tensors, path + ".tmp", metadata=metadata)
    os.replace(path + ".tmp", path)


def load_outputs(path, splits, answers=True):
    """The outputs ``save_outputs`` wrote, or None if the file is missing or lacks a split."""
    if not os.path.isfile(path):
        return None
    with safe_open(path, framework="pt") as f:
        names, metadata = set(f.keys()), f.metadata() or {}
        if any(f"{split}.labels" not in names for split in splits):
            return None
        outputs = {}
        for split in splits:
            prefix = f"{split}.distance."
            kept = None
            if answers and f"{split}.answers" in names:
                sizes = json.loads(metadata[f"{split}.answer_batches"])
                kept = list(torch.split(f.get_tensor(f"{split}.answers"), sizes))
            outputs[split] = SplitOutputs(
                labels=f.get_tensor(f"{split}.labels").numpy(),
                scores=f.get_tensor(f"{split}.scores").numpy(),
                yes_no=f.get_tensor(f"{split}.yes_no").numpy(),
                users=f.get_tensor(f"{split}.users").numpy() if f"{split}.users" in names else None,
                vocab_distances={
                    name.removeprefix(prefix): f.get_tensor(name).numpy() for name in names if name.startswith(prefix)
                },
                answers=kept,
            )
    return outputs
