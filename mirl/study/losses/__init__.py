"""The training losses a study can use (``--set loss=<name>``), one file per loss.

An entry is ``loss(output, target) -> 0-d tensor`` on float32 images in [0, 1] of shape
``(batch, 3, height, width)`` (the network's output is cast to float32 first). Mind that a CUDA
graph replays it: no ``.item()`` or other host reads (else register it with ``capturable=False``).

Example:
    >>> import torch
    >>> losses.names()
    ('charbonnier', 'l1', 'mse')
    >>> float(losses.get("l1")(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)))
    1.0
"""

from __future__ import annotations

from mirl.models.registry import Registry

losses = Registry("loss", __name__)

__all__ = ["losses"]
