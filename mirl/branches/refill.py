"""Refill, a structured ticket (Chen et al., ICML 2022, "Coarsening the Granularity: Towards
Structurally Sparse Lottery Tickets", IMP-Refill; code: github.com/VITA-Group/Structure-LTH,
``prune_model_custom_fillback``): main's unstructured mask at level k regrouped into whole
channels of PromptIR's internal dimensions, then trained from main's starting weights with
main's budget and data order. Can the ticket's weights live in few whole channels?

For every internal dimension (:func:`mirl.models.narrow.channel_units`: the feed-forward's hidden
channels, the attention's query channels and key/value pairs per head, the channels an
upsampling makes for its 1x1 reduction):

* each channel is ranked by the L1 norm of the weights main keeps in it, read from main's
  trained weights of level k - 1 (the weights that main's level-k mask was cut from, as the
  paper ranks the trained network after each IMP round);
* the unit keeps ``round(main's kept count in the unit / weights per channel)`` channels (at least
  one per head; the same number in every head), the top ones of each head, *refilled* to dense,
  so the unit holds about as many weights as main's does; every other channel is removed whole.

Weights outside the internal dimensions (the residual streams' convolutions, LayerNorm scales,
the prompts' layers) keep main's mask. The masked network that trains is exactly the narrowed
network of :func:`mirl.models.narrow.narrow_model` (what ``mirl export --format onnx`` writes).

Unlike the paper, refill here is a branch of main's chain (every level k is regrouped from
main's level k, and main goes on unstructured), not a chain of its own; the paper refills after
every round and prunes the refilled network next.

Example:
    >>> Refill().changes
    "mask: main's kept weights in each internal dimension regrouped into whole channels (IMP-Refill)"
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import torch

from mirl.errors import MirlError
from mirl.models import load_checkpoint
from mirl.models.config import ModelConfig
from mirl.models.narrow import channel_units, narrow_model
from mirl.paths import level_dir, model_file

from . import Branch, BranchContext, Evaluate

log = logging.getLogger(__name__)


def refill_mask(main_mask: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor],
                config: ModelConfig) -> dict[str, torch.Tensor]:
    """Main's mask with every internal dimension regrouped into whole channels (see the module).

    ``weights`` rank the channels (main's trained weights that the mask was cut from); tensors
    outside the internal dimensions keep ``main_mask``.

    Example:
        >>> from mirl.models import build_model
        >>> net = build_model("tiny")
        >>> weights = net.state_dict()
        >>> main = {n: torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) < 0.2
        ...         for n, w in weights.items() if "weight" in n}
        >>> mask = refill_mask(main, weights, net.config)
        >>> ffn = mask["encoder_level1.0.ffn.project_out.weight"][:, :, 0, 0]
        >>> bool(((ffn.all(0)) | (~ffn.any(0))).all())   # every hidden channel whole or gone
        True
    """
    if config.bias:
        raise MirlError("refill needs a bias-free PromptIR (every preset is one): biases are never pruned, so a removed "
                        "key/value channel would still emit its bias; set bias=False in the model configuration")
    mask = {n: m.clone() for n, m in main_mask.items()}
    for unit in channel_units(config):
        slots = [s for s in unit.slots if s.tensor in main_mask]
        if not slots:
            continue
        kept = sum(s.take(main_mask[s.tensor]).sum(1) for s in slots)
        cost = sum(s.take(main_mask[s.tensor]).shape[1] for s in slots)  # weights per channel
        score = sum((s.take(weights[s.tensor]).detach().float().abs() * s.take(main_mask[s.tensor])).sum(1) for s in slots)
        n = min(unit.per_head, max(1, round(float(kept.sum()) / (unit.heads * cost))))
        keep = torch.zeros(unit.channels, dtype=torch.bool)
        for head in range(unit.heads):
            part = slice(head * unit.per_head, (head + 1) * unit.per_head)
            order = torch.sort(score[part], descending=True, stable=True).indices  # ties: lower index first
            keep[head * unit.per_head + order[:n]] = True
        for s in slots:
            view = mask[s.tensor].movedim(s.dim, 0)  # a view: writes land in the mask
            view[s.index[keep]] = True
            view[s.index[~keep]] = False
    return mask


def refill_summary(trained: torch.nn.Module) -> dict[str, Any]:
    """Parameter counts of the trained refill network, full-size and narrowed.

    Example:
        >>> from mirl.models import build_model
        >>> refill_summary(build_model("tiny"))["parameters_narrowed"]
        375926
    """
    narrowed = narrow_model(trained)
    widths = narrowed.narrow_widths
    units = channel_units(trained.config)
    return {"parameters": sum(p.numel() for p in trained.parameters()),
            "parameters_narrowed": sum(p.numel() for p in narrowed.parameters()),
            "channels": sum(u.channels for u in units),
            "channels_kept": sum(widths[u.name] * u.heads for u in units)}


class Refill(Branch):
    name = "refill"
    label = "refill (channels)"
    changes = "mask: main's kept weights in each internal dimension regrouped into whole channels (IMP-Refill)"

    def mask(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        trained, _ = load_checkpoint(model_file(level_dir(ctx.replicate, ctx.level - 1)))
        mask = refill_mask(ctx.main_mask, trained.state_dict(), trained.config)
        main_kept, kept = sum(int(m.sum()) for m in ctx.main_mask.values()), sum(int(m.sum()) for m in mask.values())
        log.info("refill, level %d: %d weights kept in whole channels (main keeps %d)", ctx.level, kept, main_kept)
        return mask

    def after_training(self, ctx: BranchContext, trained: torch.nn.Module, evaluate: Evaluate) -> dict[str, Any]:
        return {"refill": refill_summary(trained)}
