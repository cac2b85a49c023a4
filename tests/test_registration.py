"""RecBole finds the plug-in through its own lookup functions; built-in models are untouched."""

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import recbole
import recbole.data.dataset
from recbole.data import create_dataset
from recbole.data.dataset import Dataset
from recbole.evaluator import register
from recbole.model.context_aware_recommender.deepfm import DeepFM
from recbole.trainer import Trainer
from recbole.utils import ModelType, get_model, get_trainer

import recbole_unlearn
from recbole_unlearn import UnlearnMethod, compat, register_method, register_metric
from recbole_unlearn.config import BUNDLED_DATASETS
from recbole_unlearn.data.dataset import LLMRecDataset
from recbole_unlearn.evaluation.metrics import METRICS
from recbole_unlearn.model.llmrec import LLMRec
from recbole_unlearn.trainer import LLMRecTrainer
from recbole_unlearn.unlearn.method import METHODS
from recbole_unlearn.unlearn.recbole_flow import ConfiguredLLMRecTrainer, UnlearningTrainer

from conftest import QUICK_WINDOW, small_config


def test_recbole_lookups_find_the_plugin():
    assert get_model("LLMRec") is LLMRec
    assert get_trainer(ModelType.CONTEXT, "LLMRec") is ConfiguredLLMRecTrainer
    assert issubclass(ConfiguredLLMRecTrainer, LLMRecTrainer)


def test_builtin_lookups_give_recboles_own_classes_that_unlearn_only_when_a_method_is_named(workdir):
    assert get_model("DeepFM") is DeepFM
    trainer_class = get_trainer(ModelType.CONTEXT, "DeepFM")
    assert issubclass(trainer_class, Trainer) and trainer_class.training_class is Trainer
    config = small_config("DeepFM", unlearn_method="none")
    model = DeepFM(config, create_dataset(config))
    assert type(trainer_class(config, model)) is trainer_class
    config = small_config("DeepFM", unlearn_method="neggrad")
    assert isinstance(trainer_class(config, model), UnlearningTrainer)


def registrations():
    """Every table registration writes to: RecBole's lookups and metric tables, our methods and metrics."""
    return {
        "model": get_model("LLMRec"),
        "trainer": get_trainer(ModelType.CONTEXT, "LLMRec"),
        "dataset": recbole.data.dataset.LLMRecDataset,
        "recbole_metrics": (
            dict(register.metrics_dict),
            list(register.smaller_metrics),
            dict(register.metric_types),
            dict(register.metric_information),
        ),
        "methods": dict(METHODS),
        "metrics": [(m.name, m.needs, m.better, m.receipt, m.label, m.table, m.compare) for m in METRICS.values()],
    }


def test_registration_is_idempotent():
    before = registrations()
    recbole_unlearn.register_all()
    recbole_unlearn.register_all()
    assert registrations() == before
    assert before["recbole_metrics"][1].count("acc") <= 1 and "acc" in before["recbole_metrics"][0]


def test_a_name_taken_by_another_method_or_metric_is_refused():
    class Impostor(UnlearnMethod):
        name = "e2urec"

    with pytest.raises(ValueError, match="'e2urec' is taken by"):
        register_method(Impostor)
    with pytest.raises(ValueError, match="'test_auc' is taken by"):
        register_metric("test_auc", lambda evaluation: 0.0)
    assert METHODS["e2urec"].__name__ == "E2URec"


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
    assert config["val_interval"] == QUICK_WINDOW  # the user's dict beats ours


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


def test_a_sequential_model_leaves_autograd_anomaly_detection_off():
    """RecBole's SINE module turns anomaly detection on when imported, with every sequential model."""
    check = (
        "import torch, recbole_unlearn; from recbole.utils import get_model; "
        "get_model('SASRec'); print(torch.is_anomaly_enabled())"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False"], out.stderr[-2000:]


def test_recbole_creates_a_directory_another_process_made_in_between(tmp_path, monkeypatch):
    """Two DDP ranks in a fresh folder both find ``saved/`` missing, then both create it (CI saw the
    second one fail): every RecBole module's ``ensure_dir`` must accept a directory made after its check."""
    directory = tmp_path / "saved"
    directory.mkdir()
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # the other rank made it after our check
    for module in compat.MODULES_WITH_ENSURE_DIR:
        module.ensure_dir(str(directory))
    assert directory.is_dir()


def test_every_recbole_module_that_imports_ensure_dir_is_patched():
    """A RecBole release that binds ``ensure_dir`` in one more module would bring the race back there."""
    package_dir = Path(recbole.__file__).parent
    importers = {"recbole.utils.utils"}  # where it is defined
    for source in package_dir.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        if any(
            isinstance(node, ast.ImportFrom) and any(alias.name == "ensure_dir" for alias in node.names)
            for node in ast.walk(tree)
        ):
            parts = source.relative_to(package_dir.parent).with_suffix("").parts
            importers.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert importers == {module.__name__ for module in compat.MODULES_WITH_ENSURE_DIR}
