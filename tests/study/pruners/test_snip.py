"""SNIP as a main-chain rule (mirl.study.pruners.snip): exact counts, pruned weights stay pruned,
and it ranks by |gradient x weight|, not by magnitude."""

from __future__ import annotations

import dataclasses

import torch

from mirl.models import build_model
from mirl.pruning import full_mask, magnitude_prune, masks_equal, prunable_names
from mirl.study.config import study_preset
from mirl.study.pruners import PruneContext, pruners
from tests.study.test_train import _Pairs


def _count(mask) -> int:
    return sum(int(m.sum()) for m in mask.values())


class _FixedGradients(PruneContext):
    """A context whose loss gradient is given, not computed."""

    def loss_gradients(self, weights, batches):
        return dict(self.dataset)


def test_snip_prunes_a_large_weight_without_gradient_that_magnitude_keeps():
    weights = {"a.weight": torch.tensor([5.0, 0.1, 0.2, 0.3, 0.4, 0.5, -0.6, 0.7])}
    grads = {"a.weight": torch.tensor([0.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0])}
    previous = {"a.weight": torch.ones(8, dtype=torch.bool)}
    ctx = _FixedGradients(cfg=study_preset("smoke", {"fraction": 0.25}), level=1, previous=previous, trained=weights,
                          start=weights, unused=frozenset(), dataset=grads)
    by_snip, by_magnitude = pruners.get("snip")(ctx), pruners.get("magnitude")(ctx)
    assert by_snip["a.weight"].tolist() == [False, False, True, True, True, True, True, True]  # |g w| = 0, 0.9, 1.6, ...
    assert by_magnitude["a.weight"].tolist() == [True, False, False, True, True, True, True, True]
    assert by_magnitude["a.weight"].tolist() == magnitude_prune(weights, previous, 0.25)["a.weight"].tolist()


def test_snip_on_the_tiny_network_uses_the_loss_gradient():
    torch.manual_seed(0)
    start = build_model("tiny").state_dict()
    cfg = study_preset("smoke", {"fraction": 0.2, "rule": "conv"})
    unused = frozenset(build_model("tiny").unused_in_forward)
    previous = magnitude_prune(start, None, 0.5, rule="conv", unused=unused)
    ctx = PruneContext(cfg=cfg, level=1, previous=previous, trained=start, start=start, unused=unused, dataset=_Pairs())
    mask = pruners.get("snip")(ctx)
    assert set(mask) == set(prunable_names(start, "conv", unused)) == set(full_mask(start, "conv", unused))
    alive = _count(previous)
    assert _count(mask) == alive - round(0.2 * alive)
    assert all(not bool((mask[n] & ~previous[n]).any()) for n in mask)
    grads = ctx.loss_gradients(start, 1)
    assert any(bool(g.any()) for g in grads.values()) and not bool(grads["chnl_reduce1.weight"].any())  # an unused weight
    assert not masks_equal(mask, magnitude_prune(start, previous, 0.2, rule="conv", unused=unused))
    other = pruners.get("snip")(dataclasses.replace(ctx, cfg=study_preset("smoke", {"fraction": 0.2, "rule": "conv", "loss": "mse"})))
    assert any(not torch.equal(mask[n], other[n]) for n in mask), "the study's loss does not reach the gradient"
