"""RecBole finds the plug-in through its own lookup functions; built-in models are untouched."""

import logging
import os
import subprocess
import sys

from recbole.data import create_dataset
from recbole.data.dataset import Dataset
from recbole.model.context_aware_recommender.deepfm import DeepFM
from recbole.trainer import Trainer
from recbole.utils import ModelType, get_model, get_trainer

import recbole_unlearn
from recbole_unlearn.config import BUNDLED_DATASETS
from recbole_unlearn.data.dataset import LLMRecDataset
from recbole_unlearn.model.llmrec import LLMRec
from recbole_unlearn.trainer import LLMRecTrainer

from conftest import small_config


def test_recbole_lookups_find_the_plugin():
    assert get_model("LLMRec") is LLMRec
    assert get_trainer(ModelType.CONTEXT, "LLMRec") is LLMRecTrainer


def test_builtin_lookups_unchanged():
    assert get_model("DeepFM") is DeepFM
    assert get_trainer(ModelType.CONTEXT, "DeepFM") is Trainer


def test_registration_is_idempotent():
    recbole_unlearn.register_all()
    recbole_unlearn.register_all()
    assert get_model("LLMRec") is LLMRec


def test_create_dataset_returns_llmrec_dataset(workdir):
    assert isinstance(create_dataset(small_config()), LLMRecDataset)
    deepfm_data = create_dataset(small_config("DeepFM"))
    assert type(deepfm_data) is Dataset


def test_config_merges_plugin_properties():
    config = small_config(llm_config=None)
    assert config["history_length"] == 10  # properties/model/LLMRec.yaml
    assert "movie_title" in config["load_col"]["item"]  # properties/dataset/ml-100k.yaml beats RecBole's
    assert config["eval_args"]["order"] == "TO"
    assert config["metrics"] == ["AUC", "LogLoss", "ACC"]
    assert config["val_interval"]["timestamp"] == "[891717908,inf)"  # the user's dict beats ours


def test_ml100k_falls_back_to_the_copy_in_recbole(workdir, caplog):
    with caplog.at_level(logging.INFO):
        config = small_config(data_path=str(workdir / "nowhere"))
    assert config["data_path"] == os.path.join(BUNDLED_DATASETS, "ml-100k")
    assert "using the copy shipped with recbole" in caplog.text


def test_local_dataset_copy_wins(workdir):
    (workdir / "data" / "ml-100k").mkdir(parents=True)
    config = small_config(data_path=str(workdir / "data"))
    assert config["data_path"] == str(workdir / "data" / "ml-100k")


def test_import_does_not_import_ray():
    code = "import sys, recbole_unlearn; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
