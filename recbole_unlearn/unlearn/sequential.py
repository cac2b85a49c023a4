"""Sequential forget requests: a request on top of the model an earlier request's run left."""

import os

from recbole_unlearn.errors import BadInput
from recbole_unlearn.evaluation.cost import NO_COST
from recbole_unlearn.model.lora import merge_lora
from recbole_unlearn.unlearn.method import METHODS
from recbole_unlearn.unlearn.protocol import UnlearnProtocol
from recbole_unlearn.unlearn.receipt import rebuild


def continue_after(receipt_path, config, methods):
    """(protocol, start model, its cost, the applicable methods) for this request on top of the run
    ``receipt_path`` records: the retained data excludes both requests, and the methods start from that
    run's unlearned model (adapters merged), whose cost was paid then."""
    previous = rebuild(receipt_path)
    previous_method = METHODS[previous.receipt["method"]]
    refused = [method.name for method in methods if not method.continues_from(previous_method)]
    if refused:
        raise BadInput(
            f"unlearn_after: method(s) {refused} cannot continue from a {previous_method.name} run "
            "(a sharded method continues only its own shards, and a shard ensemble cannot be fine-tuned)."
        )
    protocol = UnlearnProtocol(config, previous.protocol)
    if protocol.fingerprints["split_sha256"] != previous.protocol.fingerprints["split_sha256"]:
        raise BadInput(f"unlearn_after: {receipt_path} was run on another split of the data.")
    methods = protocol.check(methods)
    directory = os.path.dirname(os.path.abspath(receipt_path))
    receipt = previous.receipt
    protocol.start_files = [
        os.path.join(directory, entry["path"]) for entry in receipt["original"] + receipt["unlearned"]
    ]
    previous_method.adopt_files(protocol, protocol.start_files)
    return protocol, merge_lora(previous.unlearned), NO_COST, methods
