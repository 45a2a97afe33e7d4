"""The controls that tell a winning ticket from a lucky sparsity pattern.

* ``random_prune``: the same number of kept weights per tensor as magnitude pruning would keep,
  at random positions among the still-alive weights;
* ``random_reinit``: the magnitude mask, but weights re-drawn from a fresh initialisation instead
  of reset to theta_0;
* ``one_shot``: prune the dense trained network straight to each level's sparsity;
* rewinding (``reset=rewind``): reset to the weights after k training steps instead of theta_0.

Example:
    >>> import torch
    >>> target = {"a.weight": torch.tensor([True, False, True, True])}
    >>> m = random_prune(None, target, torch.Generator().manual_seed(0))
    >>> int(m["a.weight"].sum())
    3
"""

from __future__ import annotations

from typing import Mapping

import torch

from .mask import Mask



def random_prune(previous: Mapping[str, torch.Tensor] | None, target: Mapping[str, torch.Tensor], generator: torch.Generator) -> Mask:
    """A random mask with ``target``'s kept count per tensor, inside ``previous``'s alive set."""
    out: Mask = {}
    for name, wanted in target.items():
        alive = previous[name] if previous is not None else torch.ones_like(wanted, dtype=torch.bool)
        positions = alive.reshape(-1).cpu().nonzero().squeeze(1)
        keep = int(wanted.sum())
        if keep > positions.numel():
            raise ValueError(f"{name}: cannot keep {keep} weights, only {positions.numel()} alive")
        chosen = positions[torch.randperm(positions.numel(), generator=generator)[:keep]]
        flat = torch.zeros(wanted.numel(), dtype=torch.bool)
        flat[chosen] = True
        out[name] = flat.view(wanted.shape).to(wanted.device)
    return out


def one_shot_fraction(per_round: float, level: int) -> float:
    """Fraction to remove in one step to reach level ``level`` of iterative pruning: 1 - (1-f)^k."""
    return 1.0 - (1.0 - per_round) ** level
