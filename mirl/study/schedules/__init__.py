"""The learning-rate schedules a study can use (``--set schedule=<name>``), one file per schedule.

An entry is ``schedule(epoch, base_lr, warmup_epochs, max_epochs) -> lr`` for the 0-based
``epoch`` of a level (every level restarts its schedule); ``base_lr`` is the study's ``lr``.

Example:
    >>> schedules.names()
    ('constant', 'warmup_cosine')
    >>> schedules.get("constant")(7, base_lr=2e-4, warmup_epochs=15, max_epochs=120)
    0.0002
"""

from __future__ import annotations

from mirl.models.registry import Registry

schedules = Registry("schedule", __name__)

__all__ = ["schedules"]
