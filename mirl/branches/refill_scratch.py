"""Refill from scratch (Liu et al., ICLR 2019, "Rethinking the Value of Network Pruning": the
"scratch" baseline of structured pruning): the refill ticket's channels (the mask of
:mod:`mirl.branches.refill`, so exactly its narrowed shapes) with every weight drawn afresh
from the initialisation distribution, trained with main's budget and data order. Do the refill
ticket's weights matter, or only its narrowed architecture?

Like ``refill``, the masked network is exactly a narrowed one: ``mirl export --format narrow``
(or ``onnx``) removes its dead channels.

Example:
    >>> RefillScratch().changes
    "mask: refill's whole channels; starting weights: a fresh draw of every tensor (the narrowed network from scratch)"
"""

from __future__ import annotations

import torch

from . import BranchContext
from .refill import Refill


class RefillScratch(Refill):
    name = "refill_scratch"
    label = "refill from scratch"
    scratch = True
    changes = "mask: refill's whole channels; starting weights: a fresh draw of every tensor (the narrowed network from scratch)"

    def starting_weights(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        """Every tensor of the study's network drawn anew from ``ctx.seed`` (prompts and temperatures too)."""
        from mirl.models.networks import build_network

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            return build_network(ctx.cfg.model, ctx.cfg.impl).state_dict()
