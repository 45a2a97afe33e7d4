"""The Charbonnier loss sqrt((x - y)^2 + eps^2), a smooth L1 (as BasicSR's ``CharbonnierLoss``).

Example:
    >>> import torch
    >>> round(float(charbonnier(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5]))), 4)
    0.5
"""

from __future__ import annotations

import torch

from mirl.study.losses import losses

EPS = 1e-3


@losses.register("charbonnier")
def charbonnier(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Charbonnier loss, a smooth L1 with eps = 1e-3."""
    return torch.sqrt((output - target) ** 2 + EPS * EPS).mean()
