"""What produced a file: configuration and data fingerprints, file hashes, library versions, the machine."""

import functools
import hashlib
import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version

import torch

# CPU features that decide how fast mixed-precision matrix products run (AVX512-BF16, AMX tiles).
CPU_FLAGS = ("avx512_bf16", "amx_bf16")

LIBRARIES = ("recbole-unlearn", "recbole", "torch", "transformers", "peft", "safetensors", "numpy")

# Keys that change how a run is shown, where it writes or how fast it evaluates, not which model it trains
# (the evaluation batch size and a compiled forward move outputs by float rounding only).
RUNTIME_KEYS = {
    "state",
    "show_progress",
    "checkpoint_dir",
    "eval_batch_size",
    "llm_compile_inference",
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
    # Why enable_amp is what it is; the resolved enable_amp itself keys the model.
    "precision_choice",
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


def source_sha256(root):
    """SHA-256 of the Python files under ``root``: their paths relative to it and their bytes, in path order."""
    digest = hashlib.sha256()
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                digest.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
                with open(path, "rb") as f:
                    digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


@functools.cache  # the package's files do not change within a run
def code_sha256():
    """SHA-256 of recbole-unlearn's own source. Cached models and evaluation outputs are keyed by it, so
    changed code (an upgrade, or an edit of an editable install, which keeps its version number) never
    reuses what older code trained or computed."""
    return source_sha256(os.path.dirname(os.path.abspath(__file__)))


def library_versions():
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def machine():
    """The hardware a run's seconds were measured on: timings (and which loop wins) differ between CPUs,
    e.g. one with AMX runs bfloat16 products several times as fast as one with AVX512-BF16 alone."""
    cpu, flags = _cpuinfo()
    return {
        "cpu": cpu,
        "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def describe_machine(record):
    """One line for tables and logs, e.g. "AMD EPYC (avx512_bf16, torch at AVX512), 2 cores, 2 torch threads"
    (the level torch dispatches at, which ATEN_CPU_CAPABILITY may set below the CPU's)."""
    features = [
        *record["cpu_flags"],
        *([f"torch at {record['cpu_capability']}"] if record.get("cpu_capability") else []),
    ]
    flags = f" ({', '.join(features)})" if features else ""
    gpu = f", GPU {record['gpu']}" if record["gpu"] else ""
    return f"{record['cpu']}{flags}, {record['cores']} cores, {record['torch_threads']} torch threads{gpu}"


@functools.cache  # read once per process: every receipt and results file records it
def _cpuinfo():
    """The CPU's model name and feature flags (Linux's /proc/cpuinfo; elsewhere the platform's name)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), set()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    return fields.get("model name", platform.machine()), set(fields.get("flags", "").split())
