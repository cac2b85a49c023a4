"""Training and inference speed of LLMRec's default backbone, each against plain loops on the same model
and batches, measured side by side in one run (ratios > 1: ours is faster).

Usage: python bench/speed.py [--batches=N] [--repeats=N] [--training_only] [any --key=value config override]

- training: RecBole's training loop (our trainer) vs a bare transformers loop (``model(..., labels=)``,
  backward, Adam step) vs Hugging Face's ``Seq2SeqTrainer`` (the loop of the official E2URec code), on the
  same length-bucketed batches, each from the same initial weights, all in the configured precision
  (``enable_amp``/``amp_dtype``: ``auto`` picks bfloat16 mixed precision where the CPU computes bfloat16
  natively, float32 elsewhere); and our loop forced to float32 and to bfloat16 mixed precision. Ours and
  the bare loop take turns batch by batch, so the shared CPU's drifts in speed hit both alike;
- inference: our evaluation pass (``collect_outputs``) vs a bare forward at the answer position, on the
  same length-sorted batches of the whole validation split; with ``llm_compile_inference`` on (its
  compile in the untimed first batch), with ``llm_eval_dtype: bfloat16`` and with both, each one's
  P(yes) compared with the default float32 eager pass's;
- attention: the bare loop and the bare forward again with transformers' SDPA attention instead of the
  eager attention the default backbone uses (T5's position bias keeps SDPA on its unfused math path);
- the bound: the training step's FLOPs per prompt (torch's ``FlopCounterMode``) at our training rate,
  against this machine's matrix-product rate (float32 and bfloat16) at the shape of the model's
  feed-forward layer on one training batch's tokens.
The first batch of each loop is a warm-up and not timed; each loop runs ``--repeats`` times, interleaved
with the others in an order rotated each repeat (the first loop of a process runs up to 30% slower), and
its median rate is reported with the spread (single runs vary by 5-10% on a shared CPU). The first line
names the machine: which loop wins differs between CPUs.
"""

import argparse
import contextlib
import copy
import functools
import resource
import statistics
import tempfile

import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, init_seed
from torch.utils.flop_counter import FlopCounterMode
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

from recbole_unlearn import Config
from recbole_unlearn.batching import length_bucketed, length_sorted
from recbole_unlearn.config import config_with
from recbole_unlearn.evaluation.cost import now
from recbole_unlearn.evaluation.outputs import collect_outputs
from recbole_unlearn.precision import configured_amp_dtype, training_precision
from recbole_unlearn.provenance import describe_machine, machine
from recbole_unlearn.trainer import safe_trainer_for

# Evaluation options timed against the default float32 eager pass.
OPTIONS = {
    "compiled": "llm_compile_inference",
    "bfloat16": "llm_eval_dtype: bfloat16",
    "bfloat16_compiled": "both",
}
# The attention the default backbone runs with, then the one compared with it.
ATTENTION = ("eager", "sdpa")


def first(loader, count):
    return [batch for _, batch in zip(range(count), loader)]


def seq2seq_inputs(model, interaction):
    input_ids, attention_mask = model._prompts(interaction)
    labels = model.target_ids[interaction[model.LABEL].long()]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def rate(prompts, seconds):
    return prompts / seconds


def timed_loop(batches, step):
    step(batches[0])
    start = now()
    for batch in batches[1:]:
        step(batch)
    return rate(sum(len(b["input_ids"]) if isinstance(b, dict) else len(b) for b in batches[1:]), now() - start)


class StepTimer(TrainerCallback):
    """Times Seq2SeqTrainer's steps after the first."""

    def __init__(self):
        self.start = None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            self.start = now()


def training_dtype(config):
    """The dtype of our training loop's matrix products: ``amp_dtype`` (torch's CPU default when ~) under
    ``enable_amp``, else float32."""
    if not config["enable_amp"]:
        return torch.float32
    return configured_amp_dtype(config) or torch.get_autocast_dtype(torch.device(config["device"]).type)


def autocast(config):
    """The mixed precision our training loop runs in, for the plain loops."""
    device_type = torch.device(config["device"]).type
    return torch.autocast(device_type, dtype=training_dtype(config), enabled=config["enable_amp"])


def our_train_rate(config, model, batches):
    trainer = safe_trainer_for(config)(config, copy.deepcopy(model))
    trainer._train_epoch(batches[:1], 0)
    start = now()
    trainer._train_epoch(batches[1:], 1)
    return rate(sum(len(batch) for batch in batches[1:]), now() - start)


def rotated(loops, turn):
    """``loops`` (name -> no-argument callable) run in an order rotated by ``turn``: over the repeats each
    loop runs in every position, so none always pays for running first (a cold allocator and cache) or
    after a given other loop. Their results by name."""
    names = list(loops)
    turn %= len(names)
    return {name: loops[name]() for name in names[turn:] + names[:turn]}


def medians(runs):
    """Each loop's median rate over the repeats."""
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def spread(runs):
    return ", ".join(f"{name} {min(r[name] for r in runs):.0f}-{max(r[name] for r in runs):.0f}" for name in runs[0])


def train_rates(config, model, batches, inputs, turn):
    """``inputs``: ``batches`` as the transformers model's keyword arguments."""
    rates = rotated(
        {
            "alternating": lambda: alternating_train_rates(config, model, batches, inputs),
            "float32": lambda: our_train_rate(config_with(config, enable_amp=False), model, batches),
            "bfloat16": lambda: our_train_rate(config_with(config, enable_amp=True), model, batches),
            "bare_sdpa": lambda: bare_loop_rate(config, model, inputs, ATTENTION[1]),
            "hf": lambda: seq2seq_trainer_rate(config, model, inputs),
        },
        turn,
    )
    return {**rates.pop("alternating"), **rates}


def seq2seq_trainer_rate(config, model, inputs):
    learning_rate = config["learning_rate"]
    hf_model = copy.deepcopy(model).backbone.model
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as output_dir:
        arguments = Seq2SeqTrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=1,
            max_steps=len(inputs),
            learning_rate=learning_rate,
            lr_scheduler_type="constant",
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            use_cpu=torch.device(config["device"]).type == "cpu",
            bf16=training_dtype(config) == torch.bfloat16,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        hf = Seq2SeqTrainer(
            model=hf_model,
            args=arguments,
            train_dataset=inputs,
            data_collator=lambda items: items[0],
            optimizers=(torch.optim.Adam(hf_model.parameters(), lr=learning_rate), None),
            callbacks=[timer],
        )
        hf.train()
    return rate(sum(len(batch["input_ids"]) for batch in inputs[1:]), now() - timer.start)


def bare_loop_step(config, model, attention, compiled=False):
    """One step of a bare transformers loop on a copy of ``model``'s backbone, as a function of a batch
    (``compiled``: its forward through ``torch.compile(dynamic=True)``, one graph for every prompt length)."""
    bare = copy.deepcopy(model).backbone.model
    bare.set_attn_implementation(attention)
    bare.train()
    forward = torch.compile(bare, dynamic=True) if compiled else bare
    optimizer = torch.optim.Adam(bare.parameters(), lr=config["learning_rate"])

    def bare_step(batch):
        optimizer.zero_grad()
        with autocast(config):
            loss = forward(**batch).loss
        loss.backward()
        optimizer.step()

    return bare_step


def bare_loop_rate(config, model, inputs, attention):
    return timed_loop(inputs, bare_loop_step(config, model, attention))


def rates_in_turn(steps, count, warmup=1):
    """Prompts/s of each step (name -> function of a batch index that returns how many prompts it ran, 0 when
    it has nothing to do at that index), the steps taking turns index by index in an order rotated each
    time, so a drift of a shared CPU's speed, which moves whole loops by 10% here, hits all alike. The first
    ``warmup`` indices are not timed."""
    seconds, prompts = dict.fromkeys(steps, 0.0), dict.fromkeys(steps, 0)

    def timed(step, index):
        start = now()
        ran = step(index)
        return now() - start, ran

    for index in range(count):
        turn = rotated({name: functools.partial(timed, step, index) for name, step in steps.items()}, index)
        for name, (spent, ran) in turn.items():
            if index >= warmup and ran:
                seconds[name] += spent
                prompts[name] += ran
    return {name: rate(prompts[name], seconds[name]) for name in steps}


def alternating_train_rates(config, model, batches, inputs):
    """Our loop and the bare loop taking turns batch by batch (which goes first alternates too)."""
    trainer = safe_trainer_for(config)(config, copy.deepcopy(model))
    bare_step = bare_loop_step(config, model, ATTENTION[0])

    def ours(index):
        trainer._train_epoch(batches[index : index + 1], index)
        return len(batches[index])

    def bare(index):
        bare_step(inputs[index])
        return len(batches[index])

    return rates_in_turn({"ours": ours, "bare": bare}, len(batches))


def training_flops_per_prompt(model, inputs):
    """FLOPs of a training step's forward and backward passes per prompt, as ``FlopCounterMode`` counts them
    (matrix products and attention; elementwise work is not counted)."""
    t5 = copy.deepcopy(model).backbone.model
    t5.train()
    with FlopCounterMode(display=False) as counter:
        for batch in inputs:
            t5(**batch).loss.backward()
    return counter.get_total_flops() / sum(len(batch["input_ids"]) for batch in inputs)


def matmul_gflops(rows, inner, columns, dtype, repeats=50):
    """This machine's matrix-product rate at one shape and dtype, GFLOP/s."""
    left, right = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, columns, dtype=dtype)
    left @ right
    start = now()
    for _ in range(repeats):
        left @ right
    return 2 * rows * inner * columns * repeats / (now() - start) / 1e9


class Batches:
    """A few batches of a loader, iterable like it (``collect_outputs`` reads ``sample_size``)."""

    def __init__(self, batches):
        self.batches, self.sample_size = batches, sum(len(batch[0]) for batch in batches)

    def __iter__(self):
        return iter(self.batches)


def inference_rates(model, bfloat16_model, batches, turn):
    """``bfloat16_model``: ``model``'s weights with ``llm_eval_dtype: bfloat16``."""
    model.eval()
    inputs = [model._prompts(batch[0]) for batch in batches]
    return rotated(
        {
            "ours": lambda: our_inference_rate(model, batches),
            "compiled": lambda: our_inference_rate(model, batches, compiled=True),
            "bfloat16": lambda: our_inference_rate(bfloat16_model, batches),
            "bfloat16_compiled": lambda: our_inference_rate(bfloat16_model, batches, compiled=True),
            "bare": lambda: bare_forward_rate(model, inputs, ATTENTION[0]),
            "bare_sdpa": lambda: bare_forward_rate(model, inputs, ATTENTION[1]),
        },
        turn,
    )


@contextlib.contextmanager
def compile_inference(model, compiled):
    """``model`` with ``llm_compile_inference`` set to ``compiled``, eager again after."""
    model.compile_inference = compiled
    try:
        yield
    finally:
        model.compile_inference = False


def our_inference_rate(model, batches, compiled=False):
    """``collect_outputs``' rate (the first batch, which compiles, not timed)."""
    with compile_inference(model, compiled):
        collect_outputs(model, Batches(batches[:1]), model.LABEL)
        start = now()
        collect_outputs(model, Batches(batches[1:]), model.LABEL)
    return rate(sum(len(batch[0]) for batch in batches[1:]), now() - start)


def like_gap(reference, model, batches, compiled=False):
    """The largest difference between ``reference`` (P(yes) on ``batches``) and ``model``'s evaluation outputs
    there (``compiled``: with ``llm_compile_inference``)."""
    with compile_inference(model, compiled):
        return abs(collect_outputs(model, Batches(batches), model.LABEL).like - reference).max()


def bare_forward_rate(model, inputs, attention):
    t5 = copy.deepcopy(model).backbone.model
    t5.set_attn_implementation(attention)
    t5.eval()
    start_id = model.backbone.decoder_start_token_id

    @torch.inference_mode()
    def bare_step(prompt):
        ids, mask = prompt
        decoder = torch.full((ids.size(0), 1), start_id, dtype=torch.long, device=ids.device)
        t5(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder).logits[:, 0, :]

    bare_step(inputs[0])
    start = now()
    for prompt in inputs[1:]:
        bare_step(prompt)
    return rate(sum(len(prompt[0]) for prompt in inputs[1:]), now() - start)


def bench_setup(repeats):
    """The ``--batches`` and ``--repeats`` options and LLMRec's configuration on ML-100K (RecBole's Config reads
    any other ``--key=value`` from the command line), with its seed set."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--training_only", action="store_true", help="time the training loops and precisions only")
    args, _ = parser.parse_known_args()
    config = Config(model="LLMRec", dataset="ml-100k", config_dict={"state": "warning", "show_progress": False})
    init_seed(config["seed"], config["reproducibility"])
    return args, config


def main():
    args, config = bench_setup(repeats=5)
    start = now()
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    preparation = now() - start
    model = get_model("LLMRec")(config, train_data._dataset).to(config["device"])
    train_batches = first(length_bucketed(train_data), args.batches + 1)
    # The whole validation split: length-sorted batches run from the shortest prompts to the longest.
    eval_batches = [(batch[0].to(config["device"]), *batch[1:]) for batch in length_sorted(valid_data)]

    train_inputs = [seq2seq_inputs(model, batch.to(config["device"])) for batch in train_batches]
    training = [train_rates(config, model, train_batches, train_inputs, turn) for turn in range(args.repeats)]
    trained = training_dtype(config)
    trained_in = training_precision(config)
    print(f"machine {describe_machine(machine())}")
    print(
        f"threads {torch.get_num_threads()}, {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"train batch {config['train_batch_size']}, eval batch {config['eval_batch_size']}, "
        f"median of {args.repeats} repeats, loops in rotated order"
    )
    print(
        f"data preparation {preparation:.1f} s (load, history, tokenize {len(train_data._dataset.inter_feat)} "
        "training prompts and the rest)"
    )
    print(f"training   spread over repeats (min-max): {spread(training)}")
    train = medians(training)
    ours, bare, hf, bare_sdpa, float32, bfloat16 = (
        train[name] for name in ("ours", "bare", "hf", "bare_sdpa", "float32", "bfloat16")
    )
    print(
        f"training   ours {ours:7.1f} prompts/s | bare loop {bare:7.1f} ({ours / bare:.2f}x) | "
        f"Seq2SeqTrainer {hf:7.1f} ({ours / hf:.2f}x) | all in {trained_in}"
    )
    print(f"precision  the default trains in {trained_in} ({config['precision_choice']})")
    print(
        f"precision  ours forced to float32 {float32:7.1f} prompts/s | to bfloat16 mixed precision {bfloat16:7.1f} "
        f"({bfloat16 / float32:.2f}x float32) | the default {ours / float32:.2f}x float32"
    )
    if args.training_only:
        return
    bfloat16_model = get_model("LLMRec")(config_with(config, llm_eval_dtype="bfloat16"), train_data._dataset)
    bfloat16_model.load_state_dict(model.state_dict())
    inference = [inference_rates(model, bfloat16_model, eval_batches, turn) for turn in range(args.repeats)]
    reference = collect_outputs(model, Batches(eval_batches), model.LABEL).like  # the default float32 eager pass
    gaps = {
        "compiled": like_gap(reference, model, eval_batches, compiled=True),
        "bfloat16": like_gap(reference, bfloat16_model, eval_batches),
        "bfloat16_compiled": like_gap(reference, bfloat16_model, eval_batches, compiled=True),
    }
    infer = medians(inference)
    our_inference, bare_inference, sdpa_inference = (infer[name] for name in ("ours", "bare", "bare_sdpa"))
    flops = training_flops_per_prompt(model, train_inputs[1:])
    llm_config = config["llm_config"]
    batch_tokens = statistics.mean(batch["input_ids"].numel() for batch in train_inputs)
    shape = (round(batch_tokens), llm_config["d_model"], llm_config["d_ff"])
    product_rate = {
        dtype: statistics.median(matmul_gflops(*shape, dtype) for _ in range(args.repeats))
        for dtype in {torch.float32, torch.bfloat16, trained}
    }
    print(f"inference  spread over repeats (min-max): {spread(inference)}")
    print(
        f"inference  ours {our_inference:7.1f} prompts/s (float32, the default) | bare forward {bare_inference:7.1f} "
        f"({our_inference / bare_inference:.2f}x) | {our_inference / ours:.2f}x our training rate "
        f"({our_inference / float32:.2f}x in float32)"
    )
    for name, label in OPTIONS.items():
        print(
            f"inference  {label:<29} {infer[name]:7.1f} prompts/s ({infer[name] / our_inference:.2f}x the default) | "
            f"{infer[name] / ours:.2f}x our training rate | max |P(yes) diff| {gaps[name]:.1e}"
        )
    print(
        f"attention  SDPA instead of eager: bare loop {bare_sdpa:7.1f} prompts/s ({bare_sdpa / bare:.2f}x) | "
        f"bare forward {sdpa_inference:7.1f} ({sdpa_inference / bare_inference:.2f}x)"
    )
    print(
        f"bound      training step {flops / 1e6:.0f} MFLOP/prompt = {flops * ours / 1e9:.0f} GFLOP/s at our rate | "
        f"matrix product ({shape[0]}x{shape[1]} @ {shape[1]}x{shape[2]}) float32 {product_rate[torch.float32]:.0f}, "
        f"bfloat16 {product_rate[torch.bfloat16]:.0f} GFLOP/s | "
        f"{flops * ours / 1e9 / product_rate[trained]:.0%} of the {trained_in} one"
    )
    print(f"peak memory (RSS) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
