"""SASRec's training step with autograd anomaly detection on (what RecBole's SINE module leaves behind when
any sequential model is imported) and off (what ``recbole_unlearn.compat`` restores), side by side.

Usage: python bench/anomaly_detection.py [--steps=N] [any --key=value config override]

On ML-100K with RecBole's SASRec settings, the same batches run a forward, backward and Adam step from the
same weights, alternating the mode step by step (so a drift of a shared CPU's speed hits both alike). It
prints the median seconds per step of each mode and their ratio; the first line names the machine.
"""

import argparse
import copy
import statistics
import time

import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, init_seed

from recbole_unlearn import Config
from recbole_unlearn.provenance import describe_machine, machine


def step_seconds(model, optimizer, batch, anomaly):
    with torch.autograd.set_detect_anomaly(anomaly):
        start = time.perf_counter()
        model.calculate_loss(batch).backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    args, _ = parser.parse_known_args()
    print(f"Machine: {describe_machine(machine())}")
    config = Config("SASRec", "ml-100k", config_dict={"state": "warning", "show_progress": False})
    train_data, _, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("SASRec")(config, train_data._dataset).train()
    models = {anomaly: copy.deepcopy(model) for anomaly in (True, False)}
    optimizers = {anomaly: torch.optim.Adam(m.parameters(), config["learning_rate"]) for anomaly, m in models.items()}
    seconds = {True: [], False: []}
    batches = iter(train_data)
    for _ in range(args.steps):
        batch = next(batches)
        for anomaly in (True, False):
            seconds[anomaly].append(step_seconds(models[anomaly], optimizers[anomaly], batch, anomaly))
    on, off = (statistics.median(seconds[anomaly]) for anomaly in (True, False))
    print(
        f"SASRec training step (batch {config['train_batch_size']}, median of {args.steps}): anomaly detection "
        f"on {on:.2f} s, off {off:.2f} s; off takes {off / on:.2f}x the time"
    )


if __name__ == "__main__":
    main()
