"""Built-in RecBole models next to LLMRec: same data config, same split, same metric code."""

import json
import os

import numpy as np
from recbole.data import create_dataset, data_preparation

from recbole_unlearn.quick_start import train_and_test

from conftest import SMALL_WINDOW, TINY_T5, run_cli, small_config, write_config_file


def test_deepfm_trains_with_the_plugin_imported(workdir):
    result = train_and_test(
        "DeepFM",
        "ml-100k",
        config_dict={
            "use_gpu": False,
            "state": "warning",
            "show_progress": False,
            "val_interval": SMALL_WINDOW,
            "epochs": 10,
            "train_batch_size": 128,
        },
    )
    assert result["test_result"]["auc"] > 0.6
    assert result["checkpoint"].endswith(".safetensors") and os.path.isfile(result["checkpoint"])
    with open(result["checkpoint"].removesuffix(".safetensors") + ".json") as f:
        provenance = json.load(f)
    assert provenance["model"] == "DeepFM" and provenance["dataset"] == "ml-100k"
    assert {"config_sha256", "split_sha256", "sha256", "library_versions", "code_sha256"} <= set(provenance)


def test_llmrec_and_deepfm_share_the_split(workdir):
    splits = {}
    for model in ("LLMRec", "DeepFM"):
        config = small_config(model)
        parts = data_preparation(config, create_dataset(config))
        splits[model] = [
            (part._dataset.inter_feat["user_id"].numpy(), part._dataset.inter_feat["item_id"].numpy()) for part in parts
        ]
    for (u1, i1), (u2, i2) in zip(splits["LLMRec"], splits["DeepFM"]):
        assert np.array_equal(u1, u2) and np.array_equal(i1, i2)


def test_cli_trains_and_tests_both_models(workdir):
    config_file = write_config_file(workdir / "small.yaml", epochs=1, llm_config=TINY_T5)
    out = run_cli(
        "--model=LLMRec,DeepFM",
        "--dataset=ml-100k",
        f"--config_files={config_file}",
        "--train_batch_size=64",
        "--unlearn_method=none",
        cwd=workdir,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout.splitlines()
    assert table[0].startswith("| model | test auc | test logloss | test acc |")
    assert table[2].startswith("| LLMRec |") and table[3].startswith("| DeepFM |")
