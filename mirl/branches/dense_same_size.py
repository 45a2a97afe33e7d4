"""The practitioner's alternative (Liu et al., ICLR 2019, "Rethinking the Value of Network
Pruning"): a *dense* PromptIR of uniformly reduced width with about as many trainable parameters
as main keeps at level k, trained from a fresh initialisation with main's budget and data order.
Is pruning worth it at all, or does a small dense network do as well?

Every width of the study's network (``dim``, ``prompt_dims``, ``prompt_sizes``) is scaled by one
factor; integer widths alone cannot hit every count, so the feed-forward expansion factor is tuned
too (:func:`same_size_config`). The node records both counts (``parameters`` and ``main_remaining`` in
``metrics.json``) and its ``network``; its mask is the full mask of its own network (density 1.0), and its
``model.pt`` records its configuration, so ``mirl export`` and ``mirl restore`` rebuild it.

Example:
    >>> DenseSameSize().changes
    'network: a dense PromptIR of uniformly reduced width with as many parameters as the ticket keeps, from a fresh draw'
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

import torch

from mirl.models.config import MAX_FFN_EXPANSION, ModelConfig, parameter_count

from . import Branch, BranchContext, Evaluate

log = logging.getLogger(__name__)

TOLERANCE = 0.10  # the count must lie within 10% of main's remaining count


@functools.lru_cache(maxsize=4096)
def _count(config: ModelConfig) -> int:
    return parameter_count(config)


def _fit(width: int, heads: int, offset: int) -> int:
    """The whole number nearest ``width`` (at least 1) that makes ``offset + width`` divisible by ``heads``."""
    best = max(1, width)
    for delta in range(heads):
        for value in (width - delta, width + delta):
            if value >= 1 and (offset + value) % heads == 0:
                return value
    return best


def scaled_config(base: ModelConfig, dim: int, ffn: float | None = None) -> ModelConfig | None:
    """``base`` with every width scaled by ``dim / base.dim`` (prompt widths kept divisible by their
    heads), or ``None`` when no valid network has that ``dim`` (an odd one, or widths its heads do not divide).

    Example:
        >>> from mirl.models.config import preset
        >>> scaled_config(preset("tiny"), 4).prompt_dims
        (4, 8, 20)
    """
    if dim % 2:
        return None  # Downsample halves dim's channels before a pixel unshuffle: an odd dim does not run
    factor = dim / base.dim
    h = base.heads[2]
    prompts = tuple(_fit(round(p * factor), h, m * dim) for p, m in zip(base.prompt_dims, (2, 4, 8)))
    reduce3 = None if base.chnl_reduce3_out is None else max(1, round(base.chnl_reduce3_out * factor))
    try:
        return dataclasses.replace(base, dim=dim, prompt_dims=prompts, prompt_sizes=tuple(max(1, round(s * factor)) for s in base.prompt_sizes),
                                   chnl_reduce3_out=reduce3, ffn_expansion_factor=base.ffn_expansion_factor if ffn is None else ffn)
    except ValueError:
        return None


def _with_ffn(config: ModelConfig, ffn: float) -> ModelConfig | None:
    try:
        return dataclasses.replace(config, ffn_expansion_factor=round(ffn, 6))
    except ValueError:
        return None


def _tune_ffn(config: ModelConfig, target: int) -> ModelConfig:
    """``config`` with the feed-forward expansion whose parameter count is nearest ``target``."""
    low, high = 1.0 / config.dim + 1e-5, MAX_FFN_EXPANSION
    for _ in range(24):  # the count grows with the expansion: bisect for the first one at or above target
        mid = (low + high) / 2
        trial = _with_ffn(config, mid)
        if trial is not None and _count(trial) >= target:
            high = mid
        else:
            low = mid
    options = [c for c in (_with_ffn(config, low), _with_ffn(config, high)) if c is not None]
    return min(options, key=lambda c: abs(_count(c) - target)) if options else config


def same_size_config(base: ModelConfig, target: int) -> ModelConfig:
    """The PromptIR of ``base``'s shape, every width scaled by one factor and the feed-forward
    expansion tuned, whose parameter count is nearest ``target``.

    Example:
        >>> from mirl.models.config import preset, parameter_count
        >>> small = same_size_config(preset("tiny"), 200_000)
        >>> small.dim < 8 and abs(parameter_count(small) - 200_000) < 20_000
        True
    """
    sizes = [(d, c) for d in range(1, base.dim + 1) if (c := scaled_config(base, d)) is not None]
    sizes.sort(key=lambda dc: abs(_count(dc[1]) - target))
    tuned = [_tune_ffn(c, target) for _, c in sizes[:3]]
    # within 1% of the target, the most uniform scaling (expansion nearest base's) wins; else the nearest count
    return min(tuned, key=lambda c: (abs(_count(c) - target) > 0.01 * target, abs(c.ffn_expansion_factor - base.ffn_expansion_factor),
                                     abs(_count(c) - target)))


def main_remaining(ctx: BranchContext) -> int:
    """Main's trainable parameters left at ``ctx.level``: every parameter, less those its mask removes
    (the ``trainable`` count of the level's sparsity report)."""
    removed = sum(int(m.numel() - m.sum()) for m in ctx.main_mask.values())
    return sum(t.numel() for t in ctx.theta0.values()) - removed


class DenseSameSize(Branch):
    name = "dense_same_size"
    label = "dense, same size"
    scratch = True
    changes = "network: a dense PromptIR of uniformly reduced width with as many parameters as the ticket keeps, from a fresh draw"

    def network_config(self, ctx: BranchContext) -> ModelConfig:
        from mirl.models.networks import build_network

        with torch.device("meta"):
            base = build_network(ctx.cfg.model).config
        target = main_remaining(ctx)
        config = same_size_config(base, target)
        found = _count(config)
        if abs(found - target) > TOLERANCE * target:
            log.warning("dense_same_size, level %d: the nearest narrower PromptIR has %d parameters, not within %d%% of "
                        "main's %d", ctx.level, found, round(TOLERANCE * 100), target)
        log.info("dense_same_size, level %d: dim %d, ffn expansion %g: %d parameters (main keeps %d)",
                 ctx.level, config.dim, config.ffn_expansion_factor, found, target)
        return config

    def starting_weights(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        """A fresh draw of the narrower network from ``ctx.seed``."""
        from mirl.models import build_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            return build_model(self.network_config(ctx), impl=ctx.cfg.impl).state_dict()

    def after_training(self, ctx: BranchContext, trained: torch.nn.Module, evaluate: Evaluate) -> dict[str, Any]:
        return {"parameters": sum(t.numel() for t in trained.state_dict().values()), "main_remaining": main_remaining(ctx),
                "network": trained.config.to_dict()}
