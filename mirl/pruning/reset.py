"""Which tensors restart from theta_0 (or theta_k) at every level, and which keep training.

As MIR-L does (``reset_params=upstream``), only tensors named ``*weight*``/``*bias*`` are reset; the
prompts and the attention temperatures carry their trained values into the next level.
``reset_params=all`` resets everything.

Example:
    >>> import torch
    >>> source = {"a.weight": torch.zeros(1), "prompt1.prompt_param": torch.zeros(1)}
    >>> trained = {"a.weight": torch.ones(1), "prompt1.prompt_param": torch.ones(1)}
    >>> start = reset_weights(source, trained, "upstream")
    >>> float(start["a.weight"]), float(start["prompt1.prompt_param"])
    (0.0, 1.0)
"""

from __future__ import annotations

from typing import Mapping

import torch


def is_reset(name: str, reset_params: str) -> bool:
    """Whether tensor ``name`` restarts from the reset source under ``reset_params``."""
    return reset_params == "all" or "weight" in name or "bias" in name


def reset_weights(source: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor],
                  reset_params: str) -> dict[str, torch.Tensor]:
    """``source`` for the reset tensors, ``trained`` (the previous level's) for the rest (copies)."""
    return {n: (source[n] if is_reset(n, reset_params) else trained[n]).clone() for n in source}
