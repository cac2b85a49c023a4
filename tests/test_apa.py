"""APA: one LoRA adapter per shard on a frozen LLMRec backbone, weighed per user; its shards across requests."""

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from recbole_unlearn import Config
from recbole_unlearn.quick_start import unlearn_one
from recbole_unlearn.unlearn.methods.apa import APA
from recbole_unlearn.unlearn.protocol import UnlearnProtocol

from conftest import continue_with_a_retained_user, inside, run_cli, tiny_unlearn_config, write_config_file

SETTINGS = {"unlearn_method": "apa", "apa_n_shards": 2, "apa_epochs": 1, "forget_ratio": 0.1}


@pytest.fixture(scope="module")
def apa_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("apa")
    with inside(directory):
        config = tiny_unlearn_config(directory / "out", **SETTINGS)
        result = unlearn_one("LLMRec", "ml-100k", config_dict=config)
        protocol = UnlearnProtocol(Config(model="LLMRec", dataset="ml-100k", config_dict=config))
    return directory, config, result, protocol


def test_each_shard_trains_only_its_adapter_on_the_untrained_backbone(apa_run):
    _, _, result, protocol = apa_run
    row = {row["method"]: row for row in result["rows"]}["apa"]
    assert 0 < row["trainable_share"] < 0.5
    backbone = protocol.new_model().state_dict()
    for name in APA.shard_names(protocol.config):
        weights = load_file(os.path.join(result["run_dir"], f"{name}.safetensors"))
        adapters = [key for key in weights if "lora_" in key]
        assert adapters, name
        # Every other weight is the language model as LLMRec builds it before recommendation tuning.
        frozen = {key.replace(".base_layer", ""): value for key, value in weights.items() if "lora_" not in key}
        assert frozen.keys() <= backbone.keys()
        assert all(torch.equal(value, backbone[key]) for key, value in frozen.items()), name


def test_user_weights_ignore_the_forgotten_users_data(apa_run):
    _, _, _, protocol = apa_run
    weights = APA.user_weights(protocol)
    assert np.allclose(weights.sum(1), 1)
    users = protocol.train_dataset.inter_feat["user_id"].numpy()
    forgotten = np.setdiff1d(users[protocol.forget_rows], users[protocol.retain_rows])
    # A forgotten user has no retained data: the weights every such user gets are the same.
    assert len(forgotten) > 1 and np.allclose(weights[forgotten], weights[forgotten[0]])


def test_a_second_request_retrains_only_the_adapter_it_touches_and_verifies(apa_run):
    directory, config, first, protocol = apa_run
    settings = {key: value for key, value in config.items() if key != "unlearn_output_dir"}
    config_file = write_config_file(directory / "second.yaml", **settings)
    before, second_receipt, second = continue_with_a_retained_user(
        protocol, first["run_dir"], "apa", "LLMRec", config_file, directory, f"--unlearn_output_dir={directory / 'out'}"
    )
    assert len(second["rebuilt"]) == 1
    for name, old, new in zip(APA.shard_names(protocol.config), before, second["unlearned"]):
        assert (old["sha256"] != new["sha256"]) == (name in second["rebuilt"]), name
    verified = run_cli("verify", second_receipt, cwd=directory)
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
