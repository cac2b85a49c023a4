"""The scripts in docs/examples read a finished run's results.json as the docs say they do."""

import json
import runpy
import sys
from pathlib import Path

import pytest

import recbole_unlearn  # noqa: F401  (registers the metrics the scripts format)
from recbole_unlearn.evaluation.metrics import METRICS
from recbole_unlearn.evaluation.summary import judge_claims, pair_claims, summary_rows

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def row(method, seed, gap_closed):
    # A labeled model's row: every metric but the ranking models'.
    values = {name: 0.5 for name, metric in METRICS.items() if metric.family != "ranking"}
    return {**values, "method": method, "forget_gap_closed": gap_closed, "unlearn_seconds": 10.0 + seed}


@pytest.fixture
def results_file(tmp_path):
    # "better" closes exactly 0.3 more of the gap than "worse" on every seed: a zero-width CI.
    runs = [[row("worse", seed, 0.1 * seed), row("better", seed, 0.1 * seed + 0.3)] for seed in range(3)]
    results = {
        "context": {
            "model": "LLMRec",
            "forget_request": "user-level forget request, ratio 0.2",
            "training_precision": "float32",
            "machine": {"cpu": "AMD EPYC", "cpu_flags": [], "cores": 2, "torch_threads": 2, "gpu": None},
        },
        "runs": [{"seed": seed, "rows": rows} for seed, rows in enumerate(runs)],
        "summary": summary_rows(runs),
        "claims": judge_claims(pair_claims("better", "worse"), runs),
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return path


def run_example(name, monkeypatch, capsys, *arguments):
    monkeypatch.setattr(sys, "argv", [name, *map(str, arguments)])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_compare_pairs_judges_a_finished_run(results_file, monkeypatch, capsys):
    out = run_example("compare_pairs.py", monkeypatch, capsys, results_file, "better,worse", "worse,better")
    gap = METRICS["forget_gap_closed"].label
    lines = {line.split(" | ")[0]: line.split(" | ")[1:] for line in out.splitlines()}
    # A difference without spread (but for rounding): p about 0, also after Holm's correction.
    better, worse = lines[f"| better higher {gap} than worse"], lines[f"| worse higher {gap} than better"]
    assert better[0] == "0.300 ± 0.000" and worse[0] == "-0.300 ± 0.000" and better[1] == worse[1] == "3"
    assert float(better[2]) < 1e-9 and better[3] == "holds |" and worse[3] == "fails |"


def test_compare_pairs_names_a_method_the_run_lacks(results_file, monkeypatch, capsys):
    with pytest.raises(ValueError, match=r"\['better', 'npo'\] must be a pair of run rows among \['worse', 'better'\]"):
        run_example("compare_pairs.py", monkeypatch, capsys, results_file, "better,npo")


def test_compare_pairs_judges_a_method_against_another_runs_rows(results_file, monkeypatch, capsys):
    out = run_example(
        "compare_pairs.py", monkeypatch, capsys, results_file, f"--baseline={results_file}", "better,worse@baseline"
    )
    gap = METRICS["forget_gap_closed"].label
    assert f"| better higher {gap} than worse@baseline | 0.300 ± 0.000 | 3 |" in out


def test_compare_pairs_refuses_a_baseline_without_the_runs_seeds(results_file, tmp_path, monkeypatch, capsys):
    results = json.loads(results_file.read_text())
    results["runs"] = results["runs"][:2]
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(results))
    with pytest.raises(ValueError, match=r"baseline.json has no run of seed\(s\) \[2\]"):
        run_example(
            "compare_pairs.py", monkeypatch, capsys, results_file, f"--baseline={baseline}", "better,better@baseline"
        )


def test_signal_rows_sets_the_original_beside_retrain_with_each_seeds_p_value(tmp_path, monkeypatch, capsys):
    runs = [[row("original", seed, 0.0), row("retrain", seed, 1.0)] for seed in range(3)]
    for seed, rows in enumerate(runs):
        rows[0]["forget_mia_auc"] = 0.6 + 0.01 * seed
    results = {
        "runs": [
            {"seed": seed, "context": {"forget_interactions": 1000 + seed}, "rows": rows}
            for seed, rows in enumerate(runs)
        ],
        "summary": summary_rows(runs),
        "signal": {"seeds": 3, "with_signal": 2, "p": [0.2, 1e-5, 0.01]},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    out = run_example("signal_rows.py", monkeypatch, capsys, f"core users=x={path}")
    header, rule, line = out.splitlines()
    assert header.count(" | ") + 1 == rule.count("---") == line.count(" | ") + 1
    # The label keeps its "=" (the path is after the last one); MIA AUC 0.60/0.61/0.62: CI t(2) * 0.01 / sqrt(3).
    assert line.startswith("| core users=x | 1,000 / 1,001 / 1,002 | 2 of 3 (0.2, 1e-05, 0.01) |")
    assert "| 0.6100 ± 0.0248 / 0.5000 ± 0.0000 |" in line and line.endswith("| 11 / 11 |")


def test_claims_by_model_shows_each_verdict_with_its_difference(results_file, monkeypatch, capsys):
    out = run_example("claims_by_model.py", monkeypatch, capsys, results_file)
    gap = METRICS["forget_gap_closed"].label
    assert "| claim | LLMRec |" in out
    assert f"| better higher {gap} than worse | holds (0.300 ± 0.000) |" in out


def test_headline_columns_prints_one_row_per_method(results_file, monkeypatch, capsys):
    out = run_example("headline_columns.py", monkeypatch, capsys, results_file)
    # Gap closed 0.0/0.1/0.2 (+0.3): mean 0.1 (0.4), CI half-width t(2) * 0.1 / sqrt(3) = 0.248; then
    # the signal p-value and test AUC (0.5 in every row).
    assert "| worse | 0.100 ± 0.248 | 0.500 ± 0.000 | 0.5000 ± 0.0000 |" in out
    assert "| better | 0.400 ± 0.248 | 0.500 ± 0.000 | 0.5000 ± 0.0000 |" in out
    assert "| active users | inactive users |" in out


def test_headline_columns_adds_named_columns(results_file, monkeypatch, capsys):
    out = run_example("headline_columns.py", monkeypatch, capsys, results_file, "--extra=forget_gap_closed_jsd")
    assert out.splitlines()[2].endswith("| trainable | forget_gap_closed_jsd |")


def test_headline_columns_says_what_produced_the_run(results_file, monkeypatch, capsys):
    out = run_example(
        "headline_columns.py", monkeypatch, capsys, results_file, "--command=python run.py", "--commit=abc1234"
    )
    lines = out.splitlines()
    assert lines[:2] == ["`python run.py`", ""]
    assert lines[2].startswith("Commit abc1234, finished 20") and "seed(s) 0, 1, 2" in lines[2]
    assert "trained in float32; AMD EPYC, 2 cores, 2 torch threads." in lines[2]
    assert "| claim |" in out
