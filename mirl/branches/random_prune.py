"""Random pruning, the layer-wise shuffle (Frankle & Carbin, ICLR 2019; Frankle et al., ICLR 2021,
"Pruning Neural Networks at Initialization: Why are We Missing the Mark?"): in every tensor the
ticket's number of kept weights at level k, at uniformly random positions of the whole tensor,
with the ticket's starting weights. Does *which* weights survive matter?

Option ``scope``: ``layerwise`` (the default, above) or ``global``: the ticket's total kept count
at uniformly random positions of all its prunable tensors together (each tensor keeps about the
ticket's overall density; folder ``random_prune-scope_global``).

Example:
    >>> RandomPrune().changes
    "mask: the ticket's kept count in every tensor, at uniformly random positions"
    >>> m = global_random_prune({"a": torch.ones(4, dtype=torch.bool), "b": torch.zeros(4, dtype=torch.bool)},
    ...                         torch.Generator().manual_seed(0))
    >>> sum(int(t.sum()) for t in m.values())
    4
"""

from __future__ import annotations

from typing import Mapping

import torch

from mirl.pruning.controls import random_prune

from . import Branch, BranchContext, Option


def global_random_prune(target: Mapping[str, torch.Tensor], generator: torch.Generator,
                        keep_as_is: frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
    """``target``'s total kept count at uniformly random positions of all its tensors together
    (those in ``keep_as_is``, the weights the forward never uses, keep ``target``'s)."""
    names = sorted(n for n in target if n not in keep_as_is)
    sizes = [target[n].numel() for n in names]
    keep = sum(int(target[n].sum()) for n in names)
    flat = torch.zeros(sum(sizes), dtype=torch.bool)
    flat[torch.randperm(flat.numel(), generator=generator)[:keep]] = True
    parts = flat.split(sizes)
    drawn = {n: part.view(target[n].shape).to(target[n].device) for n, part in zip(names, parts)}
    return {n: drawn[n] if n in drawn else target[n].clone() for n in target}


class RandomPrune(Branch):
    name = "random_prune"
    label = "random pruning"
    changes = "mask: the ticket's kept count in every tensor, at uniformly random positions"
    options = {"scope": Option("layerwise", "layerwise: the ticket's kept count in every tensor; global: its total count over "
                                            "all prunable tensors", ("layerwise", "global"))}

    def mask(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(ctx.seed)
        if self.settings["scope"] == "global":
            return global_random_prune(ctx.main_mask, generator, ctx.unused)
        return random_prune(None, ctx.main_mask, generator)
