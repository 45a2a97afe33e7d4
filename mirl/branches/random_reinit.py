"""Random re-initialisation (Frankle & Carbin, ICLR 2019, section 2): the ticket's mask at level
k, with the kept weights drawn afresh from the initialisation distribution, trained like the
ticket (same data order). Does the ticket's *initialisation* matter?

Example:
    >>> RandomReinit().changes
    'starting weights: a fresh draw from the initialisation distribution (same mask)'
"""

from __future__ import annotations

import torch

from mirl.pruning.reset import reset_weights

from . import Branch, BranchContext


class RandomReinit(Branch):
    name = "random_reinit"
    label = "random re-init"
    changes = "starting weights: a fresh draw from the initialisation distribution (same mask)"

    def starting_weights(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        """Main's start with every reset tensor (see :mod:`mirl.pruning.reset`) drawn anew from
        ``ctx.seed``; the tensors main carries over (prompts, temperatures) are main's."""
        from mirl.models.networks import build_network

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            fresh = build_network(ctx.cfg.model).state_dict()
        return reset_weights(fresh, ctx.main_start, ctx.cfg.reset_params)
