"""The training precision: ``enable_amp: auto`` turns bfloat16 mixed precision on only where the device
computes bfloat16 natively.

On a CPU without AVX512-BF16 or AMX, torch emulates bfloat16 products: a 1024x1024 matrix product ran at
0.9 GFLOPS in bfloat16 against 93 in float32 on an AVX2 path, and an LLMRec epoch took 12x longer than
in float32. Where the hardware has it, bfloat16 products run 2-4x faster than float32 ones.
"""

from contextlib import contextmanager

import torch

from recbole_unlearn.errors import BadInput

AUTO = "auto"
# Torch's dispatch levels that can run AVX512-BF16 or AMX kernels (ATEN_CPU_CAPABILITY may cap it lower).
BFLOAT16_DISPATCH = ("AVX512",)


def cpu_bfloat16_support():
    """(whether this CPU computes bfloat16 natively, why), from torch's own CPU feature checks."""
    features = [
        name
        for name, supported in (
            ("AMX", torch.cpu._is_amx_tile_supported()),
            ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported()),
        )
        if supported
    ]
    dispatch = torch.backends.cpu.get_cpu_capability()
    if not features:
        return False, f"this CPU has neither AVX512-BF16 nor AMX (torch capability {dispatch})"
    if dispatch not in BFLOAT16_DISPATCH:
        return False, f"torch dispatches at {dispatch} (ATEN_CPU_CAPABILITY), below this CPU's {features[0]}"
    return True, f"this CPU has {features[0]}"


def bfloat16_support(device_type):
    """(whether ``device_type`` computes bfloat16 natively, why)."""
    if device_type == "cuda":
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
        return supported, f"{torch.cuda.get_device_name()} {'supports' if supported else 'lacks'} bfloat16"
    if device_type == "cpu":
        return cpu_bfloat16_support()
    return False, f"no native bfloat16 check for device type {device_type!r}"


def resolve_precision(config_dict):
    """Replace ``enable_amp: auto`` by True or False for the configured device; record the choice and its
    reason under ``precision_choice`` (a runtime key: the resolved ``enable_amp`` is what keys a model)."""
    requested = config_dict.get("enable_amp")
    if requested == AUTO:
        native, why = bfloat16_support(torch.device(config_dict["device"]).type)
        config_dict["enable_amp"] = native
        choice = f"auto: {why}"
    elif isinstance(requested, bool):
        choice = f"enable_amp: {requested} in the configuration"
    else:
        raise BadInput(f"enable_amp is {requested!r}; choose auto, True or False.")
    config_dict["precision_choice"] = choice


def training_precision(config):
    """What a run trained in, e.g. "bfloat16 mixed precision" or "float32"."""
    if not config["enable_amp"]:
        return "float32"
    dtype = config["amp_dtype"] or str(torch.get_autocast_dtype(torch.device(config["device"]).type))
    return f"{dtype.removeprefix('torch.')} mixed precision"


AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def configured_amp_dtype(config):
    """The dtype ``amp_dtype`` names for RecBole's mixed precision (``enable_amp``); None: torch's default
    for the device (bfloat16 on a CPU, float16 on a GPU)."""
    name = config["amp_dtype"]
    if name is not None and name not in AMP_DTYPES:
        raise BadInput(f"amp_dtype '{name}' is not one of {sorted(AMP_DTYPES)} (or ~ for torch's default).")
    return AMP_DTYPES.get(name)


@contextmanager
def autocast_dtype(device_type, dtype):
    """Within the block, ``torch.autocast`` opened without a dtype (as RecBole's training loop opens it)
    uses ``dtype`` (None: leaves torch's default)."""
    if dtype is None:
        yield
        return
    previous = torch.get_autocast_dtype(device_type)
    torch.set_autocast_dtype(device_type, dtype)
    try:
        yield
    finally:
        torch.set_autocast_dtype(device_type, previous)
