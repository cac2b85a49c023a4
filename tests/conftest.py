import os

import pytest
from recbole.data import create_dataset, data_preparation

import recbole_unlearn  # noqa: F401  (registers the plug-in with RecBole)
from recbole_unlearn import Config

# The last 5,000 ratings of ML-100K (timestamp >= 891717908): 3,000 train / 1,000 valid / 1,000 test.
SMALL_WINDOW = {"timestamp": "[891717908,inf)"}
TINY_T5 = {
    "d_model": 64,
    "d_ff": 128,
    "d_kv": 16,
    "num_heads": 4,
    "num_layers": 1,
    "num_decoder_layers": 1,
    "dropout_rate": 0.0,
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Each test writes logs and checkpoints under its own temp folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def small_config(model="LLMRec", dataset="ml-100k", config_file_list=None, **overrides):
    config_dict = {
        "use_gpu": False,
        "state": "warning",
        "show_progress": False,
        "val_interval": SMALL_WINDOW,
        "llm_config": TINY_T5,
        "epochs": 1,
        "checkpoint_dir": os.path.join(os.getcwd(), "saved"),
    }
    config_dict.update(overrides)
    return Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    """The training split of the tests' ML-100K slice (a DeepFM dataset: no prompts to build)."""
    os.chdir(tmp_path_factory.mktemp("train"))
    config = small_config("DeepFM")
    train_data, _, _ = data_preparation(config, create_dataset(config))
    return train_data._dataset
