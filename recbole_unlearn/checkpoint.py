"""Checkpoints that load with nothing unpickled: safetensors for tensors, JSON for their provenance.

RecBole's Trainer pickles the whole Config with the weights (``torch.save``) and reloads them with
``torch.load``, which torch >= 2.6 refuses by default (``weights_only=True``). Our files hold the
model's tensors (safetensors) and a JSON sidecar with what produced them; optimizer state is split
into tensors and JSON the same way. Writes are atomic (temp file, rename); only rank 0 writes, and in a
multi-process run rank 0 reads and broadcasts.
"""

import json
import os

import numpy as np
import scipy.sparse as sp
import torch
from recbole.utils import ModelType
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

from recbole_unlearn import distributed
from recbole_unlearn.errors import BadInput
from recbole_unlearn.provenance import code_sha256, file_sha256, library_versions

CHECKPOINT_SUFFIX = ".safetensors"
FITTED_PREFIX = "__fitted__"


def sidecar_path(checkpoint_file):
    return os.path.splitext(checkpoint_file)[0] + ".json"


def save_checkpoint(model, checkpoint_file, metadata, trainable_only=False):
    """Write ``model``'s tensors and a JSON of what produced them, each atomically (temp file, rename).

    The JSON holds ``metadata`` (model class, config hash, dataset, ...), the library versions and the
    tensors' SHA-256. ``trainable_only`` writes just the tensors that training can change (``changing``:
    a LoRA adapter, BatchNorm statistics) when the model has frozen parameters, and the whole model
    otherwise. Only rank 0 writes.
    """
    if not distributed.is_main():
        return
    os.makedirs(os.path.dirname(os.path.abspath(checkpoint_file)), exist_ok=True)
    tmp_tensors, tmp_json = checkpoint_file + ".tmp", sidecar_path(checkpoint_file) + ".tmp"
    partial = trainable_only and any(not p.requires_grad for p in model.parameters())
    fitted_tensors, fitted = split_tensors(encode_fitted(fitted_state(model)), FITTED_PREFIX)
    if partial:
        save_file({name: tensor.detach().contiguous() for name, tensor in changing(model).items()}, tmp_tensors)
    elif fitted_tensors:
        weights = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
        save_file({**weights, **fitted_tensors}, tmp_tensors)
    else:
        save_model(model, tmp_tensors)
    metadata = {
        **metadata,
        "tensors": "trainable" if partial else "all",
        **({"fitted": fitted} if fitted else {}),
        "sha256": file_sha256(tmp_tensors),
        "library_versions": library_versions(),
        "code_sha256": code_sha256(),
    }
    with open(tmp_json, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
    os.replace(tmp_tensors, checkpoint_file)
    os.replace(tmp_json, sidecar_path(checkpoint_file))


def changing(model):
    """The tensors of ``model``'s state that training can change: its trainable parameters and every
    persistent buffer (a buffer such as BatchNorm's running statistics moves in any training-mode pass,
    and changes the outputs as much as a weight does). A tensor shared by several modules (FFM's field
    embeddings, and the adapters peft puts on them) is named once, as ``named_parameters`` names it."""
    changing_tensors, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if (not isinstance(tensor, torch.nn.Parameter) or tensor.requires_grad) and id(tensor) not in seen:
            seen.add(id(tensor))
            changing_tensors[name] = tensor
    return changing_tensors


def fitted_state(model):
    """What a model RecBole fits without gradient descent keeps outside its state dict (Pop's counts,
    ItemKNN's similarity and prediction matrices): RecBole's ``other_parameter``. Other models' entries
    there (LightGCN's propagated embeddings) are caches rebuilt on demand, so they are not saved."""
    if getattr(model, "type", None) != ModelType.TRADITIONAL:
        return {}
    return model.other_parameter()


def encode_fitted(value):
    """Numpy arrays and scipy sparse matrices as tensors (plus their kind), for ``split_tensors``."""
    if isinstance(value, dict):
        return {key: encode_fitted(item) for key, item in value.items()}
    if sp.issparse(value):
        csr = value.tocsr()
        return {
            "__sparse__": value.format,
            "shape": list(csr.shape),
            "data": torch.from_numpy(csr.data),
            "indices": torch.from_numpy(csr.indices),
            "indptr": torch.from_numpy(csr.indptr),
        }
    if isinstance(value, np.ndarray):
        # EASE's similarity is an np.matrix, whose slices stay 2-D: its kind changes the scores' shape.
        return {"__numpy__": torch.from_numpy(np.ascontiguousarray(value)), "matrix": isinstance(value, np.matrix)}
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode_fitted(value):
    """The inverse of ``encode_fitted``."""
    if not isinstance(value, dict):
        return value
    if "__sparse__" in value:
        parts = (value["data"].numpy(), value["indices"].numpy(), value["indptr"].numpy())
        return sp.csr_matrix(parts, shape=tuple(value["shape"])).asformat(value["__sparse__"])
    if "__numpy__" in value:
        array = value["__numpy__"].numpy()
        return np.asmatrix(array) if value["matrix"] else array
    return {key: decode_fitted(item) for key, item in value.items()}


def read_provenance(checkpoint_file):
    """The JSON written next to ``checkpoint_file``, after checking the tensors are the ones it describes."""
    if not os.path.isfile(checkpoint_file):
        raise BadInput(f"Checkpoint {checkpoint_file} does not exist.")
    try:
        with open(sidecar_path(checkpoint_file), encoding="utf-8") as f:
            metadata = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise BadInput(
            f"Checkpoint {checkpoint_file} has no readable provenance file {sidecar_path(checkpoint_file)} "
            f"({error}); refusing to load it."
        ) from error
    if "sha256" not in metadata:
        raise BadInput(
            f"Checkpoint {checkpoint_file} records no SHA-256 (written by an older recbole-unlearn); "
            "delete it (and its .json) to train it again."
        )
    if metadata["sha256"] != file_sha256(checkpoint_file):
        raise BadInput(
            f"Checkpoint {checkpoint_file} is corrupted or truncated: its SHA-256 differs from the one "
            "recorded when it was written; refusing to load it."
        )
    return metadata


def checkpoint_sha256(checkpoint_file):
    """The tensors' SHA-256 recorded when ``checkpoint_file`` was written (checked whenever it is loaded)."""
    with open(sidecar_path(checkpoint_file), encoding="utf-8") as f:
        return json.load(f)["sha256"]


def load_checkpoint(model, checkpoint_file, device="cpu", expect=None):
    """Load tensors into ``model`` once the provenance file confirms they came from the same model class
    and match every ``expect`` entry (e.g. ``config_sha256``, ``dataset``); nothing is unpickled.

    In a multi-process run every rank calls this together: rank 0 reads the file, the others get its
    weights (and its error, if any)."""
    metadata = distributed.on_main(lambda: _load_checkpoint(model, checkpoint_file, device, expect))
    distributed.broadcast_model(model)
    return metadata


def _load_checkpoint(model, checkpoint_file, device, expect):
    metadata = read_provenance(checkpoint_file)
    expected = {"model": type(model).__name__, **(expect or {})}
    for key, value in expected.items():
        if metadata.get(key) != value:
            raise BadInput(
                f"Checkpoint {checkpoint_file} was written for {key} {metadata.get(key)!r}, "
                f"not {value!r}; refusing to load it."
            )
    missing, unexpected = load_model(model, checkpoint_file, strict=False, device=str(device))
    if "fitted" in metadata:
        unexpected = [name for name in unexpected if not name.startswith(FITTED_PREFIX + ".")]
        model.load_other_parameter(_read_fitted(checkpoint_file, metadata["fitted"], device))
    if metadata.get("tensors") == "trainable":
        # An adapter: the frozen weights come from elsewhere; every tensor training changes must be in the file.
        missing = [name for name in changing(model) if name in missing]
    if missing or unexpected:
        raise BadInput(
            f"Checkpoint {checkpoint_file} does not match {expected['model']}'s parameters: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}."
        )
    return metadata


def _read_fitted(checkpoint_file, fitted, device):
    """A traditional model's fitted state from the checkpoint: tensors on ``device``, the rest in numpy."""
    with safe_open(checkpoint_file, "pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys() if name.startswith(FITTED_PREFIX + ".")}
    state = decode_fitted(join_tensors(tensors, fitted))
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in state.items()}


def split_tensors(state, prefix=""):
    """A nested state dict as (flat tensors for safetensors, the rest as JSON with tensor names in it)."""
    if isinstance(state, torch.Tensor):
        return {prefix: state.detach().contiguous()}, {"__tensor__": prefix}
    if isinstance(state, dict):
        tensors, rest = {}, {}
        for key, value in state.items():
            # JSON keys are strings: remember integer keys (optimizer state is keyed by parameter index).
            name = f"{key}" if isinstance(key, str) else f"__int__{key}"
            sub_tensors, rest[name] = split_tensors(value, f"{prefix}.{name}" if prefix else name)
            tensors.update(sub_tensors)
        return tensors, rest
    if isinstance(state, (list, tuple)):
        tensors, rest = {}, []
        for index, value in enumerate(state):
            sub_tensors, sub_rest = split_tensors(value, f"{prefix}.{index}")
            tensors.update(sub_tensors)
            rest.append(sub_rest)
        return tensors, rest
    return {}, state


def join_tensors(tensors, rest):
    """The inverse of ``split_tensors``."""
    if isinstance(rest, dict):
        if set(rest) == {"__tensor__"}:
            return tensors[rest["__tensor__"]]
        return {
            (int(key[len("__int__") :]) if key.startswith("__int__") else key): join_tensors(tensors, value)
            for key, value in rest.items()
        }
    if isinstance(rest, list):
        return [join_tensors(tensors, value) for value in rest]
    return rest
