"""Linear warm-up then cosine decay per epoch, the published schedule:
:func:`mirl.study.train.lr_at_epoch`.

Example:
    >>> from mirl.study.schedules import schedules
    >>> schedules.get("warmup_cosine")(7, base_lr=2e-4, warmup_epochs=15, max_epochs=120)
    0.0001
"""

from __future__ import annotations

from mirl.study.schedules import schedules
from mirl.study.train import lr_at_epoch

schedules.register("warmup_cosine")(lr_at_epoch)
