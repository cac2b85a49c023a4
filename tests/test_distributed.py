"""Multi-process runs: Original training and E2URec unlearning under DDP with 2 CPU processes (gloo)
against the same run in 1 process.

The 1-process reference runs through the same launcher with ``world_size=1``: RecBole's distributed
sampler then draws the same global batches as 2 ranks do (each rank takes every second sample of the
same permutation), so the two runs differ only in floating-point summation order. (A plain
single-process run shuffles with RecBole's own generator: same split, other batches.) LoRA dropout is
off because each rank draws its own dropout masks.
"""

import glob
import os
import re
import socket

import numpy as np
import pytest
import torch.multiprocessing as mp

from recbole_unlearn import Config, distributed
from recbole_unlearn.quick_start import run_recbole_unlearn
from recbole_unlearn.unlearn.protocol import UnlearnProtocol

from conftest import inside, small_config, tiny_unlearn_config

# Trained models differ only by float summation order (gradients reduced across 2 ranks), which an epoch
# of Adam steps amplifies. Utility metrics stay within UTILITY_ATOL (measured: at most 0.003). Distances
# to Retrain compare two nearly equal distributions and move by up to 60% relative (measured, the same
# with and without length buckets), so they are only required to be finite here; the exact equality of
# 2-process and 1-process evaluation is checked on fixed models below.
UTILITY = ("test_auc", "test_logloss", "test_acc", "forget_auc", "forget_acc", "forget_logloss")
UTILITY_ATOL = 0.01


def free_port():
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return str(sock.getsockname()[1])


def settings(output):
    return tiny_unlearn_config(output, unlearn_method="e2urec", e2urec_lora_dropout=0.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    results = {}
    for nproc in (1, 2):
        workdir = tmp_path_factory.mktemp(f"nproc{nproc}")
        with inside(workdir):
            (result,) = run_recbole_unlearn(
                "LLMRec",
                "ml-100k",
                config_dict=settings(workdir / "out"),
                nproc=nproc,
                world_size=nproc,
                port=free_port(),
            )
        results[nproc] = (workdir, result)
    return results


def files_under(directory, run_dir):
    """Relative paths, with the run folder's time and the cache keys (of the launch, which differs, and of
    the trained weights, which differ by float rounding) replaced by placeholders."""
    return sorted(
        re.sub(r"-[0-9a-f]{16}", "-KEY", os.path.relpath(os.path.join(root, name), directory)).replace(
            os.path.basename(run_dir), "RUN"
        )
        for root, _, names in os.walk(directory)
        for name in names
    )


def test_two_processes_use_the_same_split_and_forget_set(runs, workdir):
    plain = UnlearnProtocol(small_config(**settings(workdir / "out"))).fingerprints
    for _, result in runs.values():
        assert {key: result["context"][key] for key in plain} == plain


def test_two_processes_write_the_same_files_once(runs):
    (one_dir, one), (two_dir, two) = runs[1], runs[2]
    assert files_under(two_dir / "out", two["run_dir"]) == files_under(one_dir / "out", one["run_dir"])
    for workdir, _ in runs.values():
        assert len(os.listdir(workdir / "log" / "LLMRec")) == 1
        assert all(not name.startswith("model-") for name in os.listdir(workdir / "log_tensorboard"))


def cached_models(workdir):
    return {
        name: glob.glob(str(workdir / "out" / "cache" / f"LLMRec-{name}-*.safetensors"))[0]
        for name in ("original", "retrain")
    }


def test_two_processes_train_models_of_their_own_key(runs):
    """Two ranks draw other batches than one: their models are cached under another key, not reused."""
    one, two = cached_models(runs[1][0]), cached_models(runs[2][0])
    assert all(os.path.basename(one[name]) != os.path.basename(two[name]) for name in one)


def test_two_processes_give_the_metrics_of_one(runs):
    one, two = runs[1][1]["rows"], runs[2][1]["rows"]
    assert [row["method"] for row in two] == [row["method"] for row in one] == ["original", "retrain", "e2urec"]
    for row_one, row_two in zip(one, two):
        assert row_two.keys() == row_one.keys()
        assert row_two["trainable_parameters"] == row_one["trainable_parameters"]
        for key in UTILITY:
            assert abs(row_two[key] - row_one[key]) <= UTILITY_ATOL, (row_one["method"], key)
        assert np.isfinite([row_two[key] for key in row_two if key.startswith("forget_")]).all()


def _evaluate_checkpoints(files, config_dict):
    """Each rank: the protocol's rows of the Original and Retrain read from ``files``."""
    protocol = UnlearnProtocol(Config(model="LLMRec", dataset="ml-100k", config_dict=config_dict))
    (original, original_cost), (retrained, retrain_cost) = (protocol.load(name, files[name]) for name in files)
    retrained_outputs = protocol.outputs(retrained, retrained)
    original_outputs = protocol.outputs(original, retrained, retrained_outputs)
    references = (retrained_outputs, original_outputs)
    return [
        protocol.evaluate("original", original, original_cost, original_outputs, *references),
        protocol.evaluate("retrain", retrained, retrain_cost, retrained_outputs, *references),
    ]


def test_two_processes_evaluate_a_model_exactly_as_one(runs, monkeypatch):
    """The 1-process run's Original and Retrain, evaluated by 2 processes: every metric of every sample
    gathered, none averaged per rank; equal up to float32 rounding (other batch sizes)."""
    one_dir, one = runs[1]
    monkeypatch.chdir(one_dir)
    args = (cached_models(one_dir),)
    two_rows = distributed.spawn(
        _evaluate_checkpoints, 2, 2, "localhost", free_port(), 0, args, settings(one_dir / "out")
    )
    for row_one, row_two in zip(one["rows"][:2], two_rows):
        for key, value in row_one.items():
            if key not in ("unlearn_seconds", "peak_rss_mib", "method"):
                expected = pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True)  # a small fairness group: NaN
                assert row_two[key] == expected, (row_one["method"], key)


def _fail_on_rank_zero(config_dict):
    distributed.init_process_group({**config_dict, "gpu_id": "", "use_gpu": False})
    if distributed.is_main():
        raise ValueError("rank zero's own error")
    distributed.broadcast_object(None)


def test_a_failing_rank_shows_its_own_error(capfd):
    """Rank 1 fails too (rank 0 leaves the broadcast), and mp.spawn may report either; rank 0's cause is
    printed whichever it reports."""
    with pytest.raises(mp.ProcessRaisedException):
        distributed.spawn(_fail_on_rank_zero, 2, 2, "localhost", free_port(), 0, (), {})
    err = capfd.readouterr().err
    assert "rank 0 failed" in err and "rank zero's own error" in err
