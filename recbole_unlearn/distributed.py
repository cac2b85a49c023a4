"""Multi-process runs the way RecBole's ``run`` does them: ``mp.spawn`` one process per rank, PyTorch
DDP through RecBole's own trainer, each rank reading a ``DistributedSampler`` share of every dataloader.

What we add: a gloo process group on CPU (RecBole always asks for nccl), metrics computed on every
sample rather than averaged over ranks, and one rule for files: rank 0 alone reads and writes them, and
whatever the other ranks need from a file (a cached model, a training state) it broadcasts. So ranks on
machines without a shared filesystem agree, and two ranks never write the same file.
"""

import os
import sys
import traceback

import recbole.trainer.trainer as recbole_trainer
import torch
import torch.distributed as dist
from recbole.evaluator import Collector
from recbole.trainer import AbstractTrainer
from torch.nn.parallel import DistributedDataParallel

# Keys RecBole's ``run`` adds to the config dict of every rank (``local_rank`` is added per process).
LAUNCH_KEYS = ("world_size", "ip", "port", "nproc", "offset")


def active():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main():
    """Whether this process writes files and logs (rank 0, or the only process)."""
    return not active() or dist.get_rank() == 0


def init_process_group(config_dict):
    """Join the run's process group (once per process: a rank builds several Configs); the device."""
    use_cuda = bool(config_dict["gpu_id"]) and config_dict.get("use_gpu", True) and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(config_dict["local_rank"])
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            rank=config_dict["local_rank"] + config_dict["offset"],
            world_size=config_dict["world_size"],
            init_method=f"tcp://{config_dict['ip']}:{config_dict['port']}",
        )
    return torch.device("cuda", config_dict["local_rank"]) if use_cuda else torch.device("cpu")


def broadcast_object(value):
    """Rank 0's ``value`` on every rank (itself without a process group)."""
    if not active():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def on_main(action):
    """Run ``action`` on rank 0 only and give its result (or re-raise its error) on every rank."""
    result, error = None, None
    if is_main():
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 (re-raised on every rank below)
            error = exc
    result, error = broadcast_object((result, error))
    if error is not None:
        raise error
    return result


def rank():
    return dist.get_rank() if active() else 0


def gather_on_main(value):
    """Every rank's ``value``, in rank order, on rank 0 (None on other ranks)."""
    if not active():
        return [value]
    values = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(value, values, dst=0)
    return values


def broadcast_model(model):
    """Copy rank 0's parameters and buffers to every rank."""
    if active():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor.data, src=0)


def gather_rows(tensor, total):
    """The rows of an evaluation over all ranks, in dataloader order: ``DistributedSampler`` (no
    shuffle) gives rank r rows r, r + W, r + 2W, ..., padding the last ones by repeating the first rows
    so that every rank holds as many; interleaving undoes the split and ``total`` drops the padding."""
    if not active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.stack(parts, dim=1).flatten(0, 1)[:total]


def finish():
    if dist.is_initialized():
        dist.destroy_process_group()


def spawn(target, nproc, world_size, ip, port, group_offset, args, config_dict):
    """Start ``nproc`` processes running ``target(*args, config_dict)``, each with its rank's keys in
    ``config_dict`` (RecBole's names); rank 0's return value comes back."""
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    launch = dict(zip(LAUNCH_KEYS, (world_size if world_size > 0 else nproc, ip, port, nproc, group_offset)))
    mp.spawn(_run_rank, args=(target, args, {**(config_dict or {}), **launch}, queue), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def _run_rank(local_rank, target, args, config_dict, queue):
    # Threads per rank: the machine's cores shared among this machine's ranks, as torchrun does.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // config_dict["nproc"]))
    try:
        result = target(*args, {**config_dict, "local_rank": local_rank})
        if local_rank + config_dict["offset"] == 0:
            queue.put(result)
    except BaseException:
        # mp.spawn raises only the first rank to exit and kills the rest: a rank that fails while its peers
        # fail from the closed connection would otherwise lose its own traceback.
        print(
            f"rank {local_rank + config_dict['offset']} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True
        )
        raise
    finally:
        finish()


class GatheringCollector(Collector):
    """RecBole's evaluation collector, returning every rank's rows, so metrics cover all samples."""

    ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")
    total = None

    def get_data_struct(self):
        struct = super().get_data_struct()
        for key in self.ROW_KEYS:
            if key in struct:
                struct.set(key, gather_rows(struct.get(key), self.total))
        return struct


class DistributedModelMixin(AbstractTrainer):
    """RecBole's DDP wrapping without its two failures: device ids for a CPU model (gloo) and a
    wrapper around a model with nothing to train (an evaluated ensemble)."""

    def __init__(self, config, model):
        self.config = config
        self.model = model
        if not config["single_spec"] and any(p.requires_grad for p in model.parameters()):
            on_gpu = config["device"].type == "cuda"
            if on_gpu:
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.distributed_model = DistributedDataParallel(
                self.model, device_ids=[config["local_rank"]] if on_gpu else None
            )


_recbole_get_tensorboard = recbole_trainer.get_tensorboard


class _NoTensorBoard:
    """What RecBole's trainer calls on its TensorBoard writer, doing nothing."""

    def add_scalar(self, *args, **kwargs):
        pass

    add_hparams = add_scalar
    close = add_scalar


def _tensorboard_on_main(logger):
    """RecBole opens a TensorBoard writer (a folder and an event file) in every trainer of every rank;
    in a multi-process run only rank 0 gets a real one."""
    return _recbole_get_tensorboard(logger) if is_main() else _NoTensorBoard()


recbole_trainer.get_tensorboard = _tensorboard_on_main
