"""Trained models kept on disk under a key of everything that determines them.

The Original, the Retrain model and SISA's shards trained before a request are trained once per key:
comparing several methods, or running again, loads them. A build that is interrupted resumes from the
training state it keeps in ``partial/`` (its time before the interruption is not counted). A build is
never counted in the time of the unlearning method that asked for it.
"""

import os
import shutil

from recbole_unlearn import distributed
from recbole_unlearn.checkpoint import save_checkpoint
from recbole_unlearn.evaluation.cost import CostMeter, not_counted


class ModelCache:
    def __init__(self, directory, prefix):
        self.directory = directory
        self.prefix = prefix
        # Name -> where the build now running keeps its resumable training state.
        self.building = {}

    def path(self, name, key):
        return os.path.join(self.directory, f"{self.prefix}-{name}-{key[:16]}.safetensors")

    def resume_dir(self, name):
        """Where the training of ``name`` keeps its state, while the cache builds it (else None)."""
        return self.building.get(name)

    def get(self, name, key, build, load, provenance):
        """(model, cost, path): loaded with ``load(path)`` -> (model, cost) if cached, else ``build()``
        measured and saved with ``provenance``."""
        path = self.path(name, key)
        if distributed.on_main(lambda: os.path.isfile(path)):
            model, cost = load(path)
            return model, cost, path
        resume_dir = os.path.join(self.directory, "partial", os.path.basename(path).removesuffix(".safetensors"))
        self.building[name] = resume_dir
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
