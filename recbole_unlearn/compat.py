"""RecBole 1.2.1 on today's stack: the few patches it needs, and why.

- RecBole's Dataset uses chained in-place ``fillna``, which pandas 2 still honours (with a
  FutureWarning per call) and pandas 3 silently ignores: setup.py pins pandas < 3 and we silence that
  one warning from RecBole's modules.
- RecBole's training loop builds the deprecated ``torch.cuda.amp.GradScaler`` on every epoch.
- Checkpoints: RecBole's pickles fail to load on torch >= 2.6; ``recbole_unlearn.checkpoint`` replaces them.
- We never import ``recbole.quick_start`` ourselves (it imports ray, which needs ``pkg_resources``).
- RecBole's ``ensure_dir`` checks whether a directory exists, then creates it: processes starting
  together (DDP ranks in a fresh folder) race on ``saved/`` and ``log/``, and the loser fails with
  FileExistsError. Every module that bound it gets one that tolerates the other process's directory.
- RecBole's graph models (LightGCN, NGCF, NCL, GCMC, SpectralCF) fill their adjacency matrix with
  ``dok_matrix._update``, which scipy 1.13 removed when its DOK format moved into ``_dict``: ours puts the
  entries there, as the removed method did (RecBole's keys are valid (row, column) pairs).
- RecBole's SINE module turns on autograd's anomaly detection when it is imported, and importing any
  sequential model imports it (their package imports every one): each backward pass of the process then
  checks every gradient for NaN and each forward keeps a traceback per operation. We import that package
  here and restore the mode it changed.
"""

import os
import warnings

import recbole.data.dataset.dataset
import recbole.data.utils
import recbole.trainer.trainer
import recbole.utils
import recbole.utils.logger
import recbole.utils.utils
import scipy.sparse
import torch

_anomaly_detection = torch.is_anomaly_enabled()
import recbole.model.sequential_recommender  # noqa: E402, F401

torch.autograd.set_detect_anomaly(_anomaly_detection)

# The RecBole modules that import ensure_dir by name (``from recbole.utils import ensure_dir``).
MODULES_WITH_ENSURE_DIR = (
    recbole.utils.utils,
    recbole.utils,
    recbole.utils.logger,
    recbole.trainer.trainer,
    recbole.data.utils,
    recbole.data.dataset.dataset,
)


def ensure_dir(dir_path):
    """RecBole's ``ensure_dir`` without its check-then-create race."""
    os.makedirs(dir_path, exist_ok=True)


for module in MODULES_WITH_ENSURE_DIR:
    module.ensure_dir = ensure_dir

warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.dataset")
warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.GradScaler", category=FutureWarning)


def _dok_update(matrix, entries):
    matrix._dict.update(entries)


if not hasattr(scipy.sparse.dok_matrix, "_update"):
    scipy.sparse.dok_matrix._update = _dok_update
