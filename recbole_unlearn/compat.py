"""RecBole 1.2.1 on today's stack: the few patches it needs, and why.

- RecBole's Dataset uses chained in-place ``fillna``, which pandas 2 still honours (with a
  FutureWarning per call) and pandas 3 silently ignores: setup.py pins pandas < 3 and we silence that
  one warning from RecBole's modules.
- RecBole's training loop builds the deprecated ``torch.cuda.amp.GradScaler`` on every epoch.
- Checkpoints: RecBole's pickles fail to load on torch >= 2.6; ``recbole_unlearn.checkpoint`` replaces them.
- We never import ``recbole.quick_start`` ourselves (it imports ray, which needs ``pkg_resources``).
"""

import warnings

warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.dataset")
warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.GradScaler", category=FutureWarning)
