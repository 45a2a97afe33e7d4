"""One-shot pruning: the dense trained weights of level 0 pruned straight to level k's sparsity,
1 - (1 - fraction)^k, with the study's scope and rule, then trained from the ticket's starting
weights, except that the tensors a level carries over instead of resetting (prompts and attention
temperatures under ``reset_params=upstream``) are level 0's trained ones, as a one-shot prune of
the dense network would have them, not main's level k - 1's. Does *iterating* matter?

Example:
    >>> OneShot().changes
    'mask: magnitude pruning of the dense trained level 0 in one step'
"""

from __future__ import annotations

import torch

from mirl.models import load_checkpoint
from mirl.paths import level_dir, model_file
from mirl.pruning.controls import one_shot_fraction
from mirl.pruning.magnitude import magnitude_prune
from mirl.pruning.reset import is_reset

from . import Branch, BranchContext


class OneShot(Branch):
    name = "one_shot"
    label = "one-shot pruning"
    changes = "mask: magnitude pruning of the dense trained level 0 in one step"

    def mask(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        dense, _ = load_checkpoint(model_file(level_dir(ctx.replicate, 0)))
        cfg = ctx.cfg
        return magnitude_prune(dense.state_dict(), None, one_shot_fraction(cfg.fraction, ctx.level), cfg.scope, cfg.rule,
                               ctx.unused)

    def starting_weights(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        """Main's start with every carried-over tensor (:mod:`mirl.pruning.reset`) taken from the
        dense trained level 0: nothing of main's later levels reaches the one-shot network."""
        dense, _ = load_checkpoint(model_file(level_dir(ctx.replicate, 0)))
        level0 = dense.state_dict()
        return {n: (t if is_reset(n, ctx.cfg.reset_params) else level0[n]).clone() for n, t in ctx.main_start.items()}
