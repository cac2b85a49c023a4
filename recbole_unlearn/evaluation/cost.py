"""The cost of a block of work (wall time and peak memory), and the metrics that report it."""

import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone

import psutil
import torch

# The meters now measuring (innermost last).
_active = []


@contextmanager
def not_counted():
    """Work that no running meter counts (a cached model a method asks for was trained before it)."""
    with ExitStack() as stack:
        for meter in list(_active):
            stack.enter_context(meter.paused())
        yield


# The cost of work this run did not do (a model an earlier run built, a re-evaluation by verify).
NO_COST = {"seconds": 0.0, "peak_rss_mib": 0.0, "peak_gpu_mib": 0.0}


def now():
    """``time.perf_counter()`` once the GPU has run the work queued so far: its kernels run asynchronously,
    so without this a block's last kernels would count in the next block's time."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def add_to_summary(key, value):
    """Add ``value`` to ``key`` in the summary of the innermost running meter (a number only the measured
    work knows, e.g. a trainer's seconds up to its best epoch; summed over several trainings); nothing if
    none runs."""
    if _active:
        _active[-1].extra[key] = _active[-1].extra.get(key, 0.0) + value


def _gpu_allocated_peak_mib():
    """torch's peak of allocated GPU memory since its last reset; 0 while no GPU was used (asking a GPU
    that was never used would start CUDA)."""
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_initialized() else 0.0


def _record_gpu_peak():
    """Every running meter takes the peak so far: the one counter torch keeps is about to be reset, or read."""
    peak = _gpu_allocated_peak_mib()
    for meter in _active:
        meter.peak_gpu_mib = max(meter.peak_gpu_mib, peak)


class CostMeter:
    """Wall time, peak resident memory (RSS sampled every 20 ms) and peak allocated GPU memory of a block.

    Work inside ``with meter.paused():`` (or ``not_counted()``) is not counted in ``seconds``. Meters nest:
    an inner meter resets torch's GPU peak counter only after the outer ones have taken its value.
    """

    def __enter__(self):
        self.paused_seconds = 0.0
        self.extra = {}
        self.process = psutil.Process()
        self.peak_rss = self.process.memory_info().rss
        self._running = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        _record_gpu_peak()
        if torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        self.peak_gpu_mib = 0.0
        self.started_at = utc_now()
        self.start = now()
        _active.append(self)
        return self

    def _sample(self):
        while self._running:
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            time.sleep(0.02)

    @contextmanager
    def paused(self):
        start = now()
        try:
            yield
        finally:
            self.paused_seconds += now() - start

    def __exit__(self, *exc):
        self.seconds = now() - self.start - self.paused_seconds
        _record_gpu_peak()
        _active.remove(self)
        self.finished_at = utc_now()
        self._running = False
        self._sampler.join()
        self.peak_rss_mib = self.peak_rss / 2**20
        return False

    def summary(self):
        return {
            "seconds": self.seconds,
            "peak_rss_mib": self.peak_rss_mib,
            "peak_gpu_mib": self.peak_gpu_mib,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            **self.extra,
        }


def utc_now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# Cost metrics of every model family (registered in recbole_unlearn.registry).


def cost_of(key):
    """A metric reading the measured cost ``key`` (``seconds``, ``peak_rss_mib``, ``peak_gpu_mib``)."""
    return lambda evaluation: evaluation.cost[key]


def seconds_to_best(evaluation):
    """A model built by RecBole's training (the Original, Retrain, SISA's retrained shards, summed): its
    training loops' seconds up to the kept (best) epoch, as the official E2URec code counts Retrain's
    time; any other: its whole time (``unlearn_seconds``)."""
    return evaluation.cost.get("seconds_to_best", evaluation.cost["seconds"])


def models_trained(evaluation):
    """How many models the work trained from scratch with RecBole's training: 1 for the Original and
    Retrain, SISA's retrained shards, 0 for a fine-tune."""
    return evaluation.cost.get("models_trained", 0)


def trainable_parameters(evaluation):
    return evaluation.trainable_parameters


def trainable_share(evaluation):
    return evaluation.trainable_parameters / evaluation.total_parameters
