"""Extension points: a metric added in one function plus one registration line reaches every output."""

import importlib
import json
import os
import sys
import textwrap

import pytest

from recbole_unlearn import Config
from recbole_unlearn.evaluation.metrics import METRICS
from recbole_unlearn.quick_start import unlearn_one
from recbole_unlearn.unlearn.receipt import verify

from conftest import RUN_SCRIPT, quiet, run_cli

# The example of docs/extending.md, verbatim.
METRIC_MODULE = '''
from recbole_unlearn import register_metric


def forget_brier(evaluation):
    """Brier score on the forget set: mean squared gap between P(like) and the label."""
    forget = evaluation.outputs["forget"]
    return float(((forget.like - forget.labels) ** 2).mean())


register_metric("forget_brier", forget_brier, needs=["forget"], better="lower", receipt=True, label="forget Brier")
'''


@pytest.fixture
def brier(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(textwrap.dedent(METRIC_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_metrics")
    yield module
    METRICS.pop("forget_brier", None)
    sys.modules.pop("my_metrics", None)


def test_a_metric_in_a_user_module_reaches_results_table_receipts_and_verify(brier, workdir):
    run = unlearn_one("DeepFM", "ml-100k", config_dict=quiet(unlearn_method="neggrad", unlearn_output_dir=str(workdir)))
    with open(os.path.join(run["run_dir"], "results.json")) as f:
        rows = {row["method"]: row for row in json.load(f)["results"]}
    assert (
        0 < rows["neggrad"]["forget_brier"] < 1 and rows["neggrad"]["forget_brier"] != rows["original"]["forget_brier"]
    )
    with open(os.path.join(run["run_dir"], "results.md")) as f:
        assert "forget Brier" in f.readline()
    receipt = os.path.join(run["run_dir"], "receipt-neggrad.json")
    with open(receipt) as f:
        assert json.load(f)["metrics"]["forget_brier"] == rows["neggrad"]["forget_brier"]
    checks = {name: ok for name, ok, _ in verify(receipt)}
    assert checks["forget_brier"] and all(checks.values())


def test_the_documented_example_is_the_tested_one():
    with open(os.path.join(os.path.dirname(RUN_SCRIPT), "docs", "extending.md")) as f:
        assert METRIC_MODULE.strip() in f.read()


@pytest.mark.parametrize(
    "key, hint",
    [
        ("neggrad_lerning_rate", "did you mean 'neggrad_learning_rate'"),
        ("forget_levl", "did you mean 'forget_level'"),
        ("unlearn_methd", "did you mean 'unlearn_method'"),
    ],
)
def test_a_mistyped_key_fails_naming_the_closest_key(key, hint):
    with pytest.raises(ValueError, match=f"Unknown config key '{key}'.*{hint}"):
        Config(model="DeepFM", dataset="ml-100k", config_dict={key: "1"})


def test_a_mistyped_key_fails_on_the_command_line_naming_the_closest_key(workdir):
    out = run_cli("--model=DeepFM", "--neggrad_lerning_rate=1e-4", cwd=workdir, timeout=120)
    assert out.returncode != 0
    assert "Unknown config key 'neggrad_lerning_rate'" in out.stderr
    assert "did you mean 'neggrad_learning_rate'" in out.stderr


# A third-party package with one unlearning method, its defaults and an entry point, as pip installs it.
PLUGIN_MODULE = '''
from importlib.resources import files

from recbole_unlearn.unlearn.unlearn_trainer import UnlearnTrainer


class GradientAscent(UnlearnTrainer):
    """Ascend on the forget data only: -CE(forget)."""

    name = "gradient_ascent"
    defaults_file = files("ascent_plugin") / "gradient_ascent.yaml"

    def compute_loss(self, pair):
        return -self.model.calculate_loss(pair.forget)
'''
PLUGIN_DEFAULTS = """gradient_ascent_learning_rate: 0.0001
gradient_ascent_epochs: 1
gradient_ascent_train_batch_size: 64
"""


def install_plugin(site):
    """``ascent_plugin`` in ``site`` as an installed distribution (a dist-info with its entry point)."""
    package = site / "ascent_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN_MODULE)
    (package / "gradient_ascent.yaml").write_text(PLUGIN_DEFAULTS)
    info = site / "ascent_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ascent-plugin\nVersion: 0.1\n")
    entry_point = "gradient_ascent = ascent_plugin:GradientAscent"
    (info / "entry_points.txt").write_text(f"[recbole_unlearn.methods]\n{entry_point}\n")


def test_a_method_of_another_package_runs_by_name_through_its_entry_point(tmp_path):
    install_plugin(tmp_path)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    flags = ["--model=DeepFM", "--unlearn_method=gradient_ascent", "--epochs=1", "--use_gpu=False"]
    flags += ["--show_progress=False", f"--val_interval={quiet()['val_interval']}"]
    out = run_cli(*flags, cwd=tmp_path, env=environment, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| gradient_ascent |" in out.stdout
    (receipt,) = (tmp_path / "saved" / "unlearn").glob("DeepFM-*/receipt-gradient_ascent.json")
    with open(receipt) as f:
        assert json.load(f)["hyperparameters"]["gradient_ascent_learning_rate"] == 0.0001
    # A mistyped key of the plug-in's prefix fails like ours: its defaults are declared keys.
    mistyped = run_cli(*flags, "--gradient_ascent_lerning_rate=1", cwd=tmp_path, env=environment)
    assert "did you mean 'gradient_ascent_learning_rate'" in mistyped.stderr
