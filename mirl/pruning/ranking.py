"""Pruning by any score with exact counts: the ``round(fraction * alive)`` surviving weights of
lowest score go, over all tensors or in each (the main chain's rules that rank by a score other
than magnitude use it: :mod:`mirl.study.pruners.snip`).

Unlike :func:`mirl.pruning.magnitude.magnitude_prune` (the published percentile threshold, which
keeps ties and never counts zeros), the count is exact and a score of zero is pruned first.

Example:
    >>> import torch
    >>> scores = {"a.weight": torch.tensor([0.3, 0.0, 0.2, 0.9])}
    >>> prune_lowest(scores, {"a.weight": torch.tensor([True, True, True, False])}, 0.34)["a.weight"].tolist()
    [True, False, True, False]
"""

from __future__ import annotations

from typing import Mapping

import torch

from .magnitude import OUTPUT_LAYER, SCOPES
from .mask import Mask


def _drop_lowest(scores: torch.Tensor, alive: torch.Tensor, count: int) -> torch.Tensor:
    """Keep-mask of a flat tensor: the dead stay dead, and the ``count`` alive entries with the
    lowest score go too (ties: the earlier position first)."""
    ranked = torch.where(alive, scores.float(), torch.tensor(-1.0))  # scores are >= 0: the dead sort first
    order = torch.argsort(ranked, stable=True)
    keep = torch.ones_like(alive)
    keep[order[: int((~alive).sum()) + count]] = False
    return keep


def prune_lowest(scores: Mapping[str, torch.Tensor], previous: Mapping[str, torch.Tensor], fraction: float,
                 scope: str = "global") -> Mask:
    """Remove ``round(fraction * alive)`` of the weights ``previous`` keeps, lowest non-negative
    ``scores`` first: one ranking over every tensor (``global``) or one per tensor
    (``layerwise``; ``output.weight`` at half the rate, as magnitude pruning). Ties go in
    order of position. Returns the new mask (on the CPU).

    Example:
        >>> import torch
        >>> prune_lowest({"w": torch.tensor([0.5, 0.1, 0.9, 0.1])}, {"w": torch.ones(4, dtype=torch.bool)}, 0.5)["w"].tolist()
        [True, False, True, False]
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid: {list(SCOPES)}")
    if any(bool((s < 0).any()) for s in scores.values()):
        raise ValueError("scores must be >= 0 (take the absolute value, as |w| or |g * w|)")
    names = list(scores)
    alive = {n: previous[n].detach().to("cpu", torch.bool) for n in names}
    if scope == "layerwise":
        out: Mask = {}
        for n in names:
            rate = fraction / 2 if n == OUTPUT_LAYER else fraction
            count = round(rate * int(alive[n].sum()))
            out[n] = _drop_lowest(scores[n].detach().cpu().reshape(-1), alive[n].reshape(-1), count).view(alive[n].shape)
        return out
    flat_alive = torch.cat([alive[n].reshape(-1) for n in names])
    flat_keep = _drop_lowest(torch.cat([scores[n].detach().cpu().reshape(-1) for n in names]), flat_alive,
                             round(fraction * int(flat_alive.sum())))
    return dict(zip(names, (part.view(alive[n].shape) for n, part in zip(names, flat_keep.split([alive[n].numel() for n in names])))))


__all__ = ["prune_lowest"]
