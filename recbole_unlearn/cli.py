"""Command line, with the flags of RecBole's run_recbole.py: --model, --dataset, --config_files, --key=value.

    recbole-unlearn --model=LLMRec --dataset=ml-100k [--unlearn_method=e2urec] [--key=value ...]
    recbole-unlearn verify RECEIPT [RECEIPT ...]

A bad configuration, request or file prints one line, ``error: <message>``, and exits with status 2;
``--debug`` (or RECBOLE_UNLEARN_DEBUG=1) shows its traceback. The only module that prints.
"""

import argparse
import os
import sys

from recbole_unlearn import distributed
from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.report import comparison_table, markdown_table, measured_on, signal_lines
from recbole_unlearn.evaluation.summary import claims_table, signal_check
from recbole_unlearn.quick_start import run_recbole_unlearn
from recbole_unlearn.unlearn.receipt import code_comparison, failure_kind, verify


def format_train_results(results):
    """The ``unlearn_method: none`` table: each model's test metrics, training time and size."""
    metrics = list(dict.fromkeys(key for r in results for key in r["test_result"]))
    header = ["model"] + [f"test {m}" for m in metrics] + ["train s", "trainable params"]
    rows = [
        [r["model"]]
        + [f"{r['test_result'].get(m, float('nan')):.4f}" for m in metrics]
        + [f"{r['train_seconds']:.0f}", f"{r['trainable_parameters']:,}"]
        for r in results
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_results(results):
    if "rows" not in results[0]:
        print(format_train_results(results))
        return
    for result in results:
        context = result["context"]
        print(
            f"{context['model']} on {context['dataset']}, {context['forget_request']} "
            f"({context['forget_interactions']} forget / {context['retain_interactions']} retain interactions)"
        )
        print(markdown_table(result["rows"]))
        runs = [run["rows"] for run in result["runs"]] if "runs" in result else [result["rows"]]
        print(signal_lines(signal_check(runs)), end="")
        if "claims" in result:
            print(claims_table(result["claims"]))
        print(measured_on(context))
        print(f"Results: {result['run_dir']}")
    if "comparison_dir" in results[0]:
        print(comparison_table(results))
        print(f"Comparison: {results[0]['comparison_dir']}")


def verify_main(paths):
    """Exit status 0 when every check of every receipt passes."""
    all_ok = True
    for path in paths:
        print(f"Verifying {path}")
        print(f"  code: {code_comparison(path)}")
        checks = verify(path)
        for check, ok, detail in checks:
            print(f"  {'OK ' if ok else 'BAD'}  {check}: {detail}")
        kind = failure_kind(checks)
        if kind:
            print(f"  FAILED: {kind}.")
        all_ok &= kind is None
    print("All checks passed." if all_ok else "Some checks FAILED.")
    return 0 if all_ok else 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="LLMRec", help="model name(s), comma-separated")
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files")
    # Multi-process flags, as RecBole's run_recbole.py names them.
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines (default: nproc)")
    parser.add_argument("--ip", default="localhost", help="address of the machine running rank 0")
    parser.add_argument("--port", default="5678", help="free port on that machine")
    parser.add_argument("--group_offset", type=int, default=0, help="rank of this machine's first process")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a bad-input error")
    # Any other --key=value is read by RecBole's Config from the command line, as in run_recbole.py.
    args, _ = parser.parse_known_args(argv)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or os.environ.get("RECBOLE_UNLEARN_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")  # RecBole's Config reads sys.argv and would warn about it
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        sys.exit(run(argv))
    except BadInput as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def run(argv):
    """The command's exit status."""
    if argv[:1] == ["verify"]:
        if not argv[1:]:
            raise BadInput("verify needs the path of at least one receipt (receipt-<method>.json).")
        return verify_main(argv[1:])
    args = parse_args(argv)
    config_files = args.config_files.strip().split(" ") if args.config_files else None
    results = run_recbole_unlearn(
        args.model,
        args.dataset,
        config_file_list=config_files,
        nproc=args.nproc,
        world_size=args.world_size,
        ip=args.ip,
        port=args.port,
        group_offset=args.group_offset,
    )
    if results and distributed.is_main():
        print_results(results)
    return 0
