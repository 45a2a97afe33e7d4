"""The mean absolute error, PromptIR's published loss.

Example:
    >>> import torch
    >>> float(l1(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5])))
    0.5
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mirl.study.losses import losses


@losses.register("l1")
def l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (the published loss)."""
    return F.l1_loss(output, target)
