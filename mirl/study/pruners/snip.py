"""SNIP (Lee et al., ICLR 2019): prune the connections the loss is least sensitive to.

Each round scores the surviving weights of the level's starting point (theta_0, or the rewind
point, with the previous mask applied) by their connection sensitivity |g * w|, g the gradient of
the study's loss on :data:`BATCHES` training batches, and removes exactly ``round(fraction * alive)``
of them with the lowest score: over all prunable tensors (``scope=global``) or in each tensor
(``layerwise``, the output convolution at half the rate, as magnitude pruning does). A weight with
zero gradient scores 0 and goes first, however large it is.

Example:
    >>> import torch
    >>> scores = {"a.weight": torch.tensor([0.3, 0.0, 0.2, 0.9])}
    >>> prune_lowest(scores, {"a.weight": torch.tensor([True, True, True, False])}, 0.34)["a.weight"].tolist()
    [True, False, True, False]
"""

from __future__ import annotations

from typing import Mapping

import torch

from mirl.pruning.magnitude import OUTPUT_LAYER, SCOPES
from mirl.pruning.mask import Mask
from mirl.pruning.rules import prunable_names
from mirl.study.pruners import PruneContext, pruners

BATCHES = 4  # training batches the gradient is averaged over


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
    (``layerwise``; ``output.weight`` at half the rate). Returns the new mask (on the CPU).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid: {list(SCOPES)}")
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


@pruners.register("snip")
def snip(ctx: PruneContext) -> Mask:
    """Prune the surviving weights of least connection sensitivity |g * w| at the level's start (Lee et al. 2019)."""
    names = prunable_names(ctx.start, ctx.cfg.rule, ctx.unused)
    grads = ctx.loss_gradients(ctx.start, BATCHES)
    scores = {n: (grads[n] * ctx.start[n].detach().cpu()).abs() for n in names}
    return prune_lowest(scores, {n: ctx.previous[n] for n in names}, ctx.cfg.fraction, ctx.cfg.scope)
