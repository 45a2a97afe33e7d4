"""Magnitude pruning, the published rule: the smallest |w| of main's trained weights go
(:func:`mirl.pruning.magnitude.magnitude_prune`: global or layer-wise, strictly below a percentile).

Example:
    >>> from mirl.study.pruners import pruners
    >>> pruners.entry("magnitude").summary
    "Prune the smallest trained weights (the published rule; the study's scope and rule)."
"""

from __future__ import annotations

from mirl.pruning.magnitude import magnitude_prune
from mirl.pruning.mask import Mask
from mirl.study.pruners import PruneContext, pruners


@pruners.register("magnitude")
def magnitude(ctx: PruneContext) -> Mask:
    """Prune the smallest trained weights (the published rule; the study's scope and rule)."""
    return magnitude_prune(ctx.trained, ctx.previous, ctx.cfg.fraction, ctx.cfg.scope, ctx.cfg.rule, ctx.unused)
