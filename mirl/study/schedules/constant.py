"""The same learning rate every epoch (no warm-up, no decay).

Example:
    >>> constant(0, base_lr=1e-3, warmup_epochs=15, max_epochs=120)
    0.001
"""

from __future__ import annotations

from mirl.study.schedules import schedules


@schedules.register("constant")
def constant(epoch: int, base_lr: float, warmup_epochs: int, max_epochs: int) -> float:
    """The study's lr at every epoch."""
    return base_lr
