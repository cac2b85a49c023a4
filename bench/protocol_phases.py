"""Where a protocol run's time goes: each phase's seconds and prompts/s, with an empty cache.

Usage: python bench/protocol_phases.py [--config_files="bench/cpu_window.yaml"] [--key=value ...]
Runs the steps of ``recbole_unlearn.unlearn.experiment.run_experiment`` one at a time in a temporary
output folder (so the Original and Retrain are trained), for LLMRec unless --model says otherwise.
"""

import argparse
import tempfile

from recbole_unlearn import Config
from recbole_unlearn.evaluation.cost import now
from recbole_unlearn.provenance import describe_machine, machine
from recbole_unlearn.unlearn.method import get_unlearn_methods
from recbole_unlearn.unlearn.protocol import UnlearnProtocol


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="LLMRec")
    parser.add_argument("--config_files", default=None)
    args, _ = parser.parse_known_args()
    files = args.config_files.split() if args.config_files else None
    rows = []

    def phase(name, prompts, action):
        start = now()
        result = action()
        seconds = now() - start
        rows.append((name, seconds, prompts / seconds if prompts else None))
        return result

    with tempfile.TemporaryDirectory() as output_dir:
        config = Config(
            model=args.model,
            dataset="ml-100k",
            config_file_list=files,
            config_dict={"unlearn_output_dir": output_dir, "state": "warning", "show_progress": False},
        )
        protocol = phase("data preparation", 0, lambda: UnlearnProtocol(config))
        epochs, train_rows = config["epochs"], len(protocol.train_dataset)
        evaluated = len(protocol.test_data._dataset) + len(protocol.forget_rows) + len(protocol.holdout_rows)
        start, _ = phase("original (train + validate)", epochs * train_rows, protocol.original)
        retrained, _ = phase(
            "retrain (train + validate)", epochs * len(protocol.retain_rows), lambda: protocol.retrain(start)
        )
        reference = phase("evaluate retrain", evaluated, lambda: protocol.evaluated_outputs(retrained, retrained))
        phase("evaluate original", evaluated, lambda: protocol.evaluated_outputs(start, retrained, reference))
        for method in get_unlearn_methods(config["unlearn_method"]):
            if method.is_retrain:
                continue
            model, cost = phase(method.name, 0, lambda method=method: protocol.unlearn(method, start))
            phase(
                f"evaluate {method.name}",
                evaluated,
                lambda model=model: protocol.evaluated_outputs(model, retrained, reference),
            )
    total = sum(seconds for _, seconds, _ in rows)
    print(f"machine {describe_machine(machine())}")
    print(f"{'phase':<30} {'seconds':>8} {'share':>6} {'prompts/s':>10}")
    for name, seconds, prompts_per_second in rows:
        speed = f"{prompts_per_second:10.0f}" if prompts_per_second else f"{'':>10}"
        print(f"{name:<30} {seconds:8.1f} {seconds / total:6.1%} {speed}")
    print(f"{'total':<30} {total:8.1f}")


if __name__ == "__main__":
    main()
