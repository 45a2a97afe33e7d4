"""SGD with Nesterov momentum 0.9 (eager only: the study's step does not capture it in a CUDA graph).

Example:
    >>> import torch
    >>> opt = sgd([torch.nn.Parameter(torch.zeros(2))], lr=0.1, weight_decay=1e-4)
    >>> opt.defaults["momentum"], opt.defaults["nesterov"]
    (0.9, True)
"""

from __future__ import annotations

import torch

from mirl.study.optimizers import optimizers

MOMENTUM = 0.9


@optimizers.register("sgd", capturable=False)
def sgd(params: list[torch.nn.Parameter], lr: float, weight_decay: float = 0.0, fused: bool = False,
        capturable: bool = False) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum 0.9 and L2 weight decay."""
    return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM, nesterov=True, weight_decay=weight_decay)
