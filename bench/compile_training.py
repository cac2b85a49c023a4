"""Does ``torch.compile`` speed up LLMRec's training step? The bare transformers loop of ``speed.py``
(``model(..., labels=)``, backward, Adam step, in the configured precision) eager and compiled
(``torch.compile(dynamic=True)``: one graph for every prompt length), each on its own copy of the same
initial weights, on the same length-bucketed batches (ratio > 1: compiled is faster). The first pass over
the batches compiles (and recompiles where a guard on the shapes fails) and is reported on its own; then each
copy runs whole passes, the two in an order rotated each repeat, and each one's median rate is reported.
Whole passes, not batches taken in turn: taking turns step by step slowed the eager copy by 15-25% here (the
compiled one's step in between), and so favoured the compiled one (1.17-1.28x where whole passes give ~1.0x).

Usage: python bench/compile_training.py [--batches=N] [--repeats=N] [any --key=value config override]
"""

from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model
from speed import ATTENTION, bare_loop_step, bench_setup, first, medians, rotated, seq2seq_inputs, spread

from recbole_unlearn.batching import length_bucketed
from recbole_unlearn.evaluation.cost import now
from recbole_unlearn.provenance import describe_machine, machine


def main():
    args, config = bench_setup(repeats=4)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("LLMRec")(config, train_data._dataset).to(config["device"])
    batches = first(length_bucketed(train_data), args.batches + 1)
    inputs = [seq2seq_inputs(model, batch.to(config["device"])) for batch in batches]
    eager, compiled = (bare_loop_step(config, model, ATTENTION[0], compiled=flag) for flag in (False, True))
    # A first pass over every batch compiles, and recompiles where a guard on the shapes fails (transformers'
    # T5 guards on batch x length); the eager copy takes the same steps so both time the same weights' phase.
    start = now()
    for batch in inputs:
        compiled(batch)
    compiling_pass = now() - start
    for batch in inputs:
        eager(batch)

    def timed_pass(step):
        begin = now()
        for batch in inputs:
            step(batch)
        return sum(len(batch["input_ids"]) for batch in inputs) / (now() - begin)

    passes = {"eager": lambda: timed_pass(eager), "compiled": lambda: timed_pass(compiled)}
    runs = [rotated(passes, turn) for turn in range(args.repeats)]
    rates = medians(runs)
    lengths = sorted({batch["input_ids"].size(1) for batch in inputs})
    print(f"machine {describe_machine(machine())}")
    print(
        f"{args.repeats} repeats of {len(inputs)} batches of {config['train_batch_size']}, "
        f"prompt lengths {lengths[0]}-{lengths[-1]} tokens"
    )
    print(f"spread over repeats (min-max): {spread(runs)}")
    print(
        f"training   eager {rates['eager']:7.1f} prompts/s | compiled {rates['compiled']:7.1f} "
        f"({rates['compiled'] / rates['eager']:.2f}x) | the first, compiling pass: {compiling_pass:.0f} s"
    )


if __name__ == "__main__":
    main()
