"""Training and inference throughput (prompts/second) and peak memory of LLMRec's default backbone.

Usage: python bench/llmrec_throughput.py [--batches=N] [any --key=value RecBole override]
Runs on the ML-100K prompts of the default configuration (properties/), single process.
"""

import argparse
import resource
import time

import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, init_seed

import recbole_unlearn  # noqa: F401  (registers LLMRec with RecBole)
from recbole_unlearn import Config


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(batches, step):
    """Prompts per second of ``step`` over ``batches`` (the first batch is a warm-up)."""
    step(batches[0])
    start, prompts = time.perf_counter(), 0
    for batch in batches[1:]:
        step(batch)
        prompts += len(batch)
    return prompts / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=60)
    args, _ = parser.parse_known_args()
    config = Config(model="LLMRec", dataset="ml-100k", config_dict={"state": "warning"})
    init_seed(config["seed"], config["reproducibility"])
    start = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    prepare_seconds = time.perf_counter() - start
    model = get_model("LLMRec")(config, train_data._dataset).to(config["device"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])

    def train_step(batch):
        optimizer.zero_grad()
        model.calculate_loss(batch.to(config["device"])).backward()
        optimizer.step()

    model.train()
    train_batches = [batch for _, batch in zip(range(args.batches + 1), train_data)]
    train_rate = throughput(train_batches, train_step)
    model.eval()
    eval_batches = [batch[0] for _, batch in zip(range(args.batches // 4 + 1), valid_data)]
    with torch.no_grad():
        infer_rate = throughput(eval_batches, lambda b: model.predict(b.to(config["device"])))

    parameters = sum(p.numel() for p in model.parameters())
    print(f"device                 : {config['device']} ({torch.get_num_threads()} threads)")
    print(f"backbone               : {config['llm_path'] or 'T5 from llm_config'}, {parameters:,} parameters")
    print(f"data preparation       : {prepare_seconds:.1f} s (load, history, tokenize {len(dataset)} prompts)")
    print(f"training               : {train_rate:.0f} prompts/s (batch {config['train_batch_size']})")
    print(f"inference              : {infer_rate:.0f} prompts/s (batch {config['eval_batch_size']})")
    print(f"peak memory (RSS)      : {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
