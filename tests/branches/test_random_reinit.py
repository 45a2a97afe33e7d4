"""mirl.branches.random_reinit: main's mask with the reset tensors drawn afresh from the branch seed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mirl.branches import BranchContext, get_branch
from mirl.models import build_model
from mirl.pruning.reset import is_reset


@pytest.fixture(scope="module")
def main_start() -> dict[str, torch.Tensor]:
    """Main's starting weights: a tiny network's, with every tensor shifted so no fresh draw can match it."""
    torch.manual_seed(123)
    return {n: t.detach().clone() + 0.5 for n, t in build_model("tiny").state_dict().items()}


def _context(main_start: dict[str, torch.Tensor], seed: int = 7, reset_params: str = "upstream") -> BranchContext:
    g = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(t.shape, generator=g) < 0.4 for n, t in main_start.items() if "weight" in n}
    return BranchContext(cfg=SimpleNamespace(model="tiny", reset_params=reset_params), replicate=Path("replicate_0"),
                         replicate_seed=0, level=2, seed=seed, main_mask=mask, main_start=main_start, unused=frozenset())


def test_random_reinit_keeps_mains_mask_and_data_order(main_start) -> None:
    ctx = _context(main_start)
    rule = get_branch("random_reinit")
    mask = rule.mask(ctx)
    assert mask.keys() == ctx.main_mask.keys() and all(torch.equal(mask[n], ctx.main_mask[n]) for n in mask)
    assert rule.data_seed(ctx) == ctx.replicate_seed


def test_reset_tensors_are_drawn_anew_and_the_carried_ones_are_mains(main_start) -> None:
    ctx = _context(main_start)
    start = get_branch("random_reinit").starting_weights(ctx)
    assert start.keys() == main_start.keys()
    carried = [n for n in start if not is_reset(n, "upstream")]
    assert carried, "the tiny network has prompts/temperatures that main carries over"
    for name, tensor in start.items():
        assert tensor.shape == main_start[name].shape and tensor.dtype == main_start[name].dtype, name
        if is_reset(name, "upstream"):
            assert not torch.equal(tensor, main_start[name]), f"{name} kept main's start"
        else:
            assert torch.equal(tensor, main_start[name]), f"{name} should be main's"
    # a fresh draw has the initialisation's spread, not main's shifted values
    weight = start["output.weight"]
    assert abs(float(weight.mean())) < 0.1 and float((weight - main_start["output.weight"]).abs().min()) > 0


def test_reset_params_all_draws_every_tensor(main_start) -> None:
    start = get_branch("random_reinit").starting_weights(_context(main_start, reset_params="all"))
    assert not any(torch.equal(start[n], main_start[n]) for n in start)


def test_the_draw_depends_on_the_branch_seed_alone_and_leaves_the_global_rng_alone(main_start) -> None:
    rule = get_branch("random_reinit")
    torch.manual_seed(99)
    expected_next = torch.rand(3)
    torch.manual_seed(99)
    first = rule.starting_weights(_context(main_start, seed=7))
    assert torch.equal(torch.rand(3), expected_next), "the branch consumed or reseeded the global RNG"
    torch.manual_seed(1)  # another global state: the same branch seed gives the same weights
    again, other = rule.starting_weights(_context(main_start, seed=7)), rule.starting_weights(_context(main_start, seed=8))
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not torch.equal(first["output.weight"], other["output.weight"])
