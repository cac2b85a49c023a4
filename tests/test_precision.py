"""``enable_amp: auto``: bfloat16 mixed precision only where the hardware computes bfloat16 natively."""

import pytest
import torch

from recbole_unlearn.precision import cpu_bfloat16_support, training_precision
from recbole_unlearn.provenance import config_sha256

from conftest import small_config


def pretend_cpu(monkeypatch, avx512_bf16=False, amx=False, dispatch="AVX512"):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: dispatch)


@pytest.mark.parametrize(
    ("cpu", "native", "reason"),
    [
        ({"avx512_bf16": True}, True, "this CPU has AVX512-BF16"),
        ({"amx": True, "avx512_bf16": True}, True, "this CPU has AMX"),
        ({"dispatch": "AVX2"}, False, "neither AVX512-BF16 nor AMX"),
        ({"avx512_bf16": True, "dispatch": "AVX2"}, False, "torch dispatches at AVX2"),
    ],
)
def test_auto_picks_bfloat16_only_on_a_cpu_that_computes_it(monkeypatch, cpu, native, reason):
    pretend_cpu(monkeypatch, **cpu)
    assert cpu_bfloat16_support()[0] is native and reason in cpu_bfloat16_support()[1]


def test_auto_resolves_in_the_config_and_keys_the_model_by_the_precision_used(monkeypatch, workdir):
    pretend_cpu(monkeypatch, avx512_bf16=True)
    with_bfloat16 = small_config()
    pretend_cpu(monkeypatch, dispatch="AVX2")
    without = small_config()
    assert with_bfloat16["enable_amp"] is True and training_precision(with_bfloat16) == "bfloat16 mixed precision"
    assert without["enable_amp"] is False and training_precision(without) == "float32"
    assert without["precision_choice"].startswith("auto: this CPU has neither")
    assert config_sha256(with_bfloat16) != config_sha256(without)
    # The same precision chosen by auto or forced is the same model: the reason does not key it.
    assert config_sha256(without) == config_sha256(small_config(enable_amp=False))


@pytest.mark.parametrize("forced", [True, False])
def test_true_and_false_force_the_precision_whatever_the_cpu(monkeypatch, workdir, forced):
    pretend_cpu(monkeypatch, avx512_bf16=not forced)
    config = small_config(enable_amp=forced)
    assert config["enable_amp"] is forced and config["precision_choice"] == f"enable_amp: {forced} in the configuration"


def test_a_precision_that_is_neither_auto_nor_a_bool_names_the_key(workdir):
    with pytest.raises(ValueError, match="enable_amp is 'fast'; choose auto, True or False"):
        small_config(enable_amp="fast")


def test_recboles_own_config_resolves_auto_too(monkeypatch, workdir):
    from recbole.config import Config as RecBoleConfig

    pretend_cpu(monkeypatch, dispatch="AVX2")
    config = RecBoleConfig(
        "DeepFM", "ml-100k", config_dict={"enable_amp": "auto", "use_gpu": False, "state": "warning"}
    )
    assert config["enable_amp"] is False
