"""The bad-input catalogue through the command line, as a user meets it: one ``error:`` line, status 2."""

import json
import re
import subprocess
import sys

import pytest

from conftest import run_cli

# (arguments, the start of the message); each case fails before any model trains.
CATALOGUE = {
    "ratio": (["--forget_ratio=1.5"], r"forget_ratio must be a share in \(0, 1\) or a whole number.*got 1.5"),
    "count": (["--forget_ratio=100000"], "forget_ratio 100000 asks for more users than the"),
    "level": (["--forget_level=session"], "forget_level must be one of"),
    "selection": (["--forget_selection=busy"], "forget_selection must be one of"),
    "empty ids": (["--forget_ids=[]"], "forget_ids is empty"),
    "missing id file": (["--forget_file=no-such-file.txt"], "forget_file 'no-such-file.txt' cannot be read"),
    "unknown id": (["--forget_ids=[999999]"], r"forget_ids has 1 user id\(s\) not in the training split"),
    "method": (["--unlearn_method=e2uerc"], r"unlearn_method \['e2uerc'\] is unknown"),
    "knowledge model": (["--model=CKE"], "Model CKE cannot be unlearned by method.*KNOWLEDGE models are not"),
    "topk": (["--model=BPR", "--topk=0"], "topk must be a positive integer"),
    "core at item level": (["--model=BPR", "--forget_level=item", "--forget_selection=core"], "needs forget_level"),
    "label_flip on a softmax": (["--model=SASRec", "--unlearn_method=label_flip"], "has no opposite"),
    "receraser on a language model": (["--unlearn_method=receraser"], "no field embeddings.*use apa"),
    "apa on a CTR model": (["--model=DeepFM", "--unlearn_method=apa"], r"is not one \(use receraser\)"),
    "receraser shards": (
        ["--model=BPR", "--unlearn_method=receraser", "--receraser_n_shards=100000"],
        r"receraser_n_shards must be between 1 and \d+ \(the users: a shard holds at least one\), got 100000",
    ),
    "receraser partition": (
        ["--model=BPR", "--unlearn_method=receraser", "--receraser_partition=items"],
        r"receraser_partition must be one of \['user', 'interaction', 'random'\], got 'items'",
    ),
    "attention size": (
        ["--model=BPR", "--unlearn_method=receraser", "--receraser_attention_size=0"],
        "receraser_attention_size must be a positive whole number, got 0",
    ),
    "sisa shards": (["--unlearn_method=sisa", "--sisa_n_shards=0"], "sisa_n_shards must be at least 1, got 0"),
    "unknown model": (["--model=NoSuchModel"], "Model 'NoSuchModel' is not a RecBole model here"),
    "dataset": (["--dataset=no-such-data"], "dataset 'no-such-data': no folder"),
    "model section": (["--SASrec={'hidden_size': 32}"], "Config key 'SASrec' holds settings, but no RecBole model"),
    "typo": (["--e2urec_alfa=2"], "Unknown config key 'e2urec_alfa'.*did you mean 'e2urec_alpha'"),
    "precision": (["--enable_amp=fast"], "enable_amp is 'fast'; choose auto, True or False"),
    "seeds": (["--unlearn_seeds=[1,1]"], r"unlearn_seeds lists a seed more than once"),
    "relearning steps": (
        ["--model=DeepFM", "--unlearn_relearn=True", "--unlearn_relearn_steps=0"],
        "unlearn_relearn_steps must be a positive integer, got 0",
    ),
    "shadows": (
        ["--model=DeepFM", "--unlearn_mia=ulira", "--unlearn_mia_shadows=1"],
        "unlearn_mia_shadows must be an integer of at least 2",
    ),
    "membership attack": (["--model=DeepFM", "--unlearn_mia=lira"], "unlearn_mia must be loss or ulira, got 'lira'"),
    "llm_path": (["--llm_path=no-such-model"], "llm_path 'no-such-model' does not exist"),
    "verify without receipt": (["verify"], "verify needs the path of at least one receipt"),
    "missing receipt": (["verify", "no-such-receipt.json"], "Receipt no-such-receipt.json cannot be read"),
}


# Runs each case through the command line's ``main`` with its own ``sys.argv`` (RecBole's Config reads it),
# all in one Python process: the start-up (imports) is most of a case's time.
DRIVER = """
import contextlib, io, json, sys
from recbole_unlearn.cli import main
outcomes = {}
for name, args in json.loads(sys.argv[1]).items():
    sys.argv = ["run_recbole_unlearn.py", *args]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            main()
            status = 0
        except SystemExit as exit:
            status = exit.code
    outcomes[name] = [status, stderr.getvalue()]
print(json.dumps(outcomes))
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    quiet = ["--state=warning", "--show_progress=False"]
    cases = {name: [*args, *([] if args[0] == "verify" else quiet)] for name, (args, _) in CATALOGUE.items()}
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cases)],
        cwd=tmp_path_factory.mktemp("cli-errors"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return {name: (status, stderr) for name, (status, stderr) in json.loads(out.stdout.splitlines()[-1]).items()}


@pytest.mark.parametrize("case", CATALOGUE)
def test_bad_input_is_one_error_line_and_status_2(outcomes, case):
    status, stderr = outcomes[case]
    assert status == 2 and "Traceback" not in stderr, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and re.search(CATALOGUE[case][1], last), last


def test_verify_without_a_receipt_is_refused_by_the_script_itself(tmp_path):
    out = run_cli("verify", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: verify needs the path of at least one receipt (receipt-<method>.json)."
    ]


def test_debug_shows_the_traceback(tmp_path):
    out = run_cli("--forget_ratio=1.5", "--debug", "--state=warning", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" in out.stderr and "BadInput: forget_ratio must be a share" in out.stderr


def test_an_unexpected_exception_keeps_its_traceback(tmp_path):
    """A bug is not bad input: the CLI does not hide it behind an ``error:`` line."""
    out = run_cli("--model=DeepFM", "--unlearn_method=none", "--epochs=oops", "--state=warning", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" in out.stderr and "error: " not in out.stderr.splitlines()[-1]
