"""SNIP (Lee et al., ICLR 2019): prune the connections the loss is least sensitive to.

Each round scores the surviving weights of the level's starting point (theta_0, or the rewind
point, with the previous mask applied) by their connection sensitivity |g * w|, g the gradient of
the study's loss on :data:`BATCHES` training batches, and removes exactly ``round(fraction * alive)``
of them with the lowest score: over all prunable tensors (``scope=global``) or in each tensor
(``layerwise``, the output convolution at half the rate, as magnitude pruning does). A weight with
zero gradient scores 0 and goes first, however large it is.

Example:
    >>> from mirl.study.pruners import pruners
    >>> pruners.entry("snip").summary.startswith("Prune the surviving weights of least connection sensitivity")
    True
"""

from __future__ import annotations

from mirl.pruning.mask import Mask
from mirl.pruning.ranking import prune_lowest
from mirl.pruning.rules import prunable_names
from mirl.study.pruners import PruneContext, pruners

BATCHES = 4  # training batches the gradient is averaged over


@pruners.register("snip")
def snip(ctx: PruneContext) -> Mask:
    """Prune the surviving weights of least connection sensitivity |g * w| at the level's start (Lee et al. 2019)."""
    names = prunable_names(ctx.start, ctx.cfg.rule, ctx.unused)
    grads = ctx.loss_gradients(ctx.start, BATCHES)
    scores = {n: (grads[n] * ctx.start[n].detach().cpu()).abs() for n in names}
    return prune_lowest(scores, {n: ctx.previous[n] for n in names}, ctx.cfg.fraction, ctx.cfg.scope)
