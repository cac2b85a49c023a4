"""What E2URec's unlearning time can be on this machine, against Retrain's, from its steps measured side by side.

Usage: python bench/e2urec_cost.py [--batches=N] [--repeats=N] [any --key=value config override]

On the default protocol's forget batches (E2URec's batch size, length-bucketed as in training), the loops
take turns batch by batch (so a drift of a shared CPU's speed hits all alike), each in the training
precision (``enable_amp``/``amp_dtype``):
- a full fine-tuning step (Retrain's and the augmented model's kind of step) at that batch size, and at
  Retrain's own batch size (``train_batch_size``, on pairs of those batches);
- E2URec's LoRA student step (its adapters, KL to the teacher at ``e2urec_answer_positions``), with
  ``e2urec_lora_dropout`` and with no dropout;
- a frozen teacher's forward (float32, no gradients, as ``FrozenOutputs`` computes it).
Then the method's work at the default settings, counted in prompts per kind of step (the augmented model:
one pass over the forget data per ``e2urec_augment_epochs``; teachers: the Original and the augmented model
on each forget sample, the Original on each retain sample used; the student: the forget-only epoch, then
``e2urec_epochs`` paired epochs of forget and retain batches, cut by ``e2urec_paired_fraction``; Retrain:
``epochs`` passes over the retain data), priced at the measured rates: the least time E2URec can take
against the least Retrain can, validation and everything else left out of both.
"""

import copy
import math

import torch
from recbole.data.interaction import cat_interactions
from speed import autocast, bench_setup, first, medians, rates_in_turn, spread

from recbole_unlearn.config import config_with
from recbole_unlearn.provenance import describe_machine, machine
from recbole_unlearn.unlearn.methods.e2urec import E2URec
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.unlearn_trainer import kl_to_teacher


def full_step(config, model):
    full = copy.deepcopy(model)
    full.train()
    optimizer = torch.optim.Adam(full.parameters(), lr=config["learning_rate"])

    def step(batch):
        optimizer.zero_grad()
        with autocast(config):
            loss = full.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        return len(batch)

    return step


def student_step(config, model, example):
    """One step of E2URec's own student (its adapters and optimizer), KL to a given teacher output."""
    e2urec = E2URec(config, copy.deepcopy(model), example)
    e2urec.model.train()

    def step(batch, teacher):
        e2urec.optimizer.zero_grad()
        with autocast(config):
            logits, _ = e2urec.answers(e2urec.model, batch)
            loss = kl_to_teacher(teacher.flatten(0, 1), logits.flatten(0, 1))
        loss.backward()
        e2urec.optimizer.step()
        return len(batch)

    return step, e2urec


def step_rates(config, model, batches):
    """Prompts/s of each kind of step, the loops taking turns batch by batch (the first pair a warm-up)."""
    with_dropout, e2urec = student_step(config, model, batches[0])
    without_dropout, _ = student_step(config_with(config, e2urec_lora_dropout=0.0), model, batches[0])
    teacher_model = copy.deepcopy(model).eval()

    @torch.no_grad()
    def teacher(batch):
        return e2urec.answers(teacher_model, batch)[0]

    teachers = [teacher(batch) for batch in batches]
    # Retrain's batches: two of E2URec's joined (its batch size is twice E2URec's by default).
    joined = [cat_interactions(batches[index : index + 2]) for index in range(0, len(batches) - 1, 2)]
    small, large = full_step(config, model), full_step(config, model)
    steps = {
        "full": lambda index: small(batches[index]),
        "full_large": lambda index: 0 if index % 2 else large(joined[index // 2]),
        "student": lambda index: with_dropout(batches[index], teachers[index]),
        "student_no_dropout": lambda index: without_dropout(batches[index], teachers[index]),
        "teacher": lambda index: len(teacher(batches[index])),
    }
    return rates_in_turn(steps, 2 * len(joined), warmup=2)


def main():
    args, config = bench_setup(repeats=3)
    protocol = UnlearnProtocol(config)
    model = protocol.new_model()
    batch_size = config["e2urec_train_batch_size"]
    loader = protocol.subset_loader(protocol.forget_rows, batch_size)
    batches = [batch.to(config["device"]) for batch in first(loader, args.batches + 2)]
    runs = [step_rates(config, model, batches) for _ in range(args.repeats)]
    rates = medians(runs)
    forget, retain = len(protocol.forget_rows), len(protocol.retain_rows)
    forget_batches = math.ceil(forget / batch_size)
    paired = math.ceil(config["e2urec_paired_fraction"] * forget_batches) * config["e2urec_epochs"]
    retain_used = min(retain, paired * batch_size)
    student_prompts = forget + paired * 2 * batch_size
    work = {
        "augmented model (full steps)": (config["e2urec_augment_epochs"] * forget, rates["full"]),
        "teachers (float32 forwards)": (2 * forget + retain_used, rates["teacher"]),
        "student (LoRA steps)": (student_prompts, rates["student"]),
    }
    e2urec_seconds = sum(prompts / speed for prompts, speed in work.values())
    retrain_seconds = config["epochs"] * retain / rates["full_large"]
    print(f"machine {describe_machine(machine())}")
    print(
        f"{sum(p.numel() for p in model.parameters()):,} parameters, forget {forget} / retain {retain} prompts, "
        f"E2URec batch {batch_size}, Retrain's steps at batch "
        f"{2 * batch_size} (its train_batch_size: {config['train_batch_size']}), median of {args.repeats} repeats "
        f"of {args.batches} batches, loops in turn"
    )
    print(f"steps      spread over repeats (min-max): {spread(runs)}")
    print(
        f"steps      full fine-tune {rates['full']:.1f} prompts/s (batch {batch_size}), "
        f"{rates['full_large']:.1f} (batch {2 * batch_size}) | LoRA student {rates['student']:.1f} "
        f"({rates['student'] / rates['full']:.2f}x the full step), without LoRA dropout "
        f"{rates['student_no_dropout']:.1f} ({rates['student_no_dropout'] / rates['full']:.2f}x) | "
        f"teacher forward {rates['teacher']:.1f}"
    )
    for name, (prompts, speed) in work.items():
        print(f"E2URec     {name}: {prompts} prompts at {speed:.1f}/s = {prompts / speed:.1f} s")
    print(
        f"floor      E2URec {e2urec_seconds:.1f} s | Retrain {config['epochs']} x {retain} prompts at "
        f"{rates['full_large']:.1f}/s = {retrain_seconds:.1f} s | ratio {e2urec_seconds / retrain_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
