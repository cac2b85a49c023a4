"""What produced a file: configuration and data fingerprints, file hashes, library versions."""

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = ("recbole-unlearn", "recbole", "torch", "transformers", "peft", "safetensors", "numpy")

# Keys that change how a run is shown or where it writes, not which model it trains.
RUNTIME_KEYS = {
    "state",
    "show_progress",
    "checkpoint_dir",
    "eval_batch_size",
    "device",
    "gpu_id",
    "use_gpu",
    "worker",
    "log_wandb",
    "wandb_project",
    "config_files",
    "local_rank",
    "single_spec",
    "data_path",
    "verbose",
    "world_size",
    "nproc",
    "offset",
    "ip",
    "port",
}


def config_sha256(config, *extra, ignore_prefixes=()):
    """SHA-256 of the configuration that determines a trained model (all but ``RUNTIME_KEYS`` and keys
    starting with ``ignore_prefixes``), plus ``extra`` strings."""
    relevant = {
        key: value
        for key, value in config.final_config_dict.items()
        if key not in RUNTIME_KEYS and not key.startswith(tuple(ignore_prefixes))
    }
    payload = json.dumps(relevant, sort_keys=True, default=str) + "".join(extra)
    return hashlib.sha256(payload.encode()).hexdigest()


def file_sha256(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions():
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions
