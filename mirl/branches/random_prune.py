"""Random pruning, the layer-wise shuffle (Frankle & Carbin, ICLR 2019; Frankle et al., ICLR 2021,
"Pruning Neural Networks at Initialization: Why are We Missing the Mark?"): in every tensor the
ticket's number of kept weights at level k, at uniformly random positions of the whole tensor,
with the ticket's starting weights. Does *which* weights survive matter?

Example:
    >>> RandomPrune().changes
    "mask: the ticket's kept count in every tensor, at uniformly random positions"
"""

from __future__ import annotations

import torch

from mirl.pruning.controls import random_prune

from . import Branch, BranchContext


class RandomPrune(Branch):
    name = "random_prune"
    label = "random pruning"
    changes = "mask: the ticket's kept count in every tensor, at uniformly random positions"

    def mask(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        return random_prune(None, ctx.main_mask, torch.Generator().manual_seed(ctx.seed))
