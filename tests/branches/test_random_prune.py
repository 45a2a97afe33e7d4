"""The branches' own rules, on hand-made contexts (no training): what each keeps of main's level."""

from __future__ import annotations

from pathlib import Path

import torch

from mirl.branches import BranchContext, get_branch, registry


def _context(seed: int = 7, level: int = 2) -> BranchContext:
    g = torch.Generator().manual_seed(0)
    main_mask = {"conv.weight": torch.rand(16, 8, 3, 3, generator=g) < 0.3,
                 "proj.weight": torch.rand(32, 16, generator=g) < 0.1,
                 "empty.weight": torch.zeros(4, 4, dtype=torch.bool),
                 "full.weight": torch.ones(8, dtype=torch.bool)}
    start = {name: torch.randn(mask.shape, generator=g) for name, mask in main_mask.items()}
    return BranchContext(cfg=None, replicate=Path("replicate_0"), replicate_seed=0, level=level, seed=seed,
                         main_mask=main_mask, main_start=start, unused=frozenset())


def test_random_prune_keeps_mains_count_per_tensor_at_new_positions() -> None:
    ctx = _context()
    mask = get_branch("random_prune").mask(ctx)
    assert mask.keys() == ctx.main_mask.keys()
    for name, kept in ctx.main_mask.items():
        assert mask[name].dtype == torch.bool and mask[name].shape == kept.shape
        assert int(mask[name].sum()) == int(kept.sum()), name
    assert not torch.equal(mask["conv.weight"], ctx.main_mask["conv.weight"])
    # positions are drawn over the whole tensor, not only among main's kept weights
    assert bool((mask["conv.weight"] & ~ctx.main_mask["conv.weight"]).any())
    assert not mask["empty.weight"].any() and mask["full.weight"].all()


def test_random_prune_depends_on_the_branch_seed_alone() -> None:
    rule = get_branch("random_prune")
    first, again, other = rule.mask(_context(seed=7)), rule.mask(_context(seed=7)), rule.mask(_context(seed=8))
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not torch.equal(first["conv.weight"], other["conv.weight"])


def test_random_prune_draws_uniform_positions() -> None:
    """Over many seeds every position of a tensor is kept about equally often."""
    rule = get_branch("random_prune")
    counts = torch.zeros(32, 16)
    for seed in range(200):
        counts += rule.mask(_context(seed=seed))["proj.weight"].float()
    rate = float(_context().main_mask["proj.weight"].float().mean())
    assert abs(float(counts.mean()) / 200 - rate) < 1e-6
    assert float(counts.std()) / 200 < 0.05  # binomial spread of about sqrt(200 * 0.1) / 200 = 0.02


def test_controls_change_one_thing() -> None:
    ctx = _context()
    reinit, shuffle = get_branch("random_reinit"), get_branch("random_prune")
    assert all(torch.equal(reinit.mask(ctx)[n], ctx.main_mask[n]) for n in ctx.main_mask)
    assert all(torch.equal(shuffle.starting_weights(ctx)[n], ctx.main_start[n]) for n in ctx.main_start)
    assert set(registry()) >= {"random_reinit", "random_prune", "one_shot", "stability"}
