"""The optimizers a study can train with (``--set optimizer=<name>``), one file per optimizer.

An entry is ``make(params, lr, weight_decay, fused=False, capturable=False) -> torch.optim.Optimizer``:
``fused`` asks for a single-kernel implementation where there is one (the study's ``impl=fast``),
``capturable`` for one a CUDA graph can replay, with the learning rate held as a device tensor
(:class:`mirl.study.step.TrainStep` sets it in place). An optimizer registered with
``capturable=False`` makes the study's step run eagerly, and the log says so.

Example:
    >>> optimizers.names()
    ('adamw', 'sgd')
    >>> import torch
    >>> type(optimizers.get("sgd")([torch.nn.Parameter(torch.zeros(2))], lr=0.1, weight_decay=0.0)).__name__
    'SGD'
"""

from __future__ import annotations

from mirl.models.registry import Registry

optimizers = Registry("optimizer", __name__)

__all__ = ["optimizers"]
