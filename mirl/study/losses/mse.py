"""The mean squared error (the loss PSNR measures).

Example:
    >>> import torch
    >>> float(mse(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5])))
    0.25
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mirl.study.losses import losses


@losses.register("mse")
def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(output, target)
