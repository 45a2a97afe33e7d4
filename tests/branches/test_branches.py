"""mirl.branches (the package): the registry, labels, branch seeds and the base Branch's defaults."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from mirl.branches import Branch, BranchContext, branch_label, branch_seed, get_branch, registry
from mirl.errors import MirlError


def _context(seed: int = 11, replicate_seed: int = 3, level: int = 1) -> BranchContext:
    g = torch.Generator().manual_seed(0)
    mask = {"a.weight": torch.rand(6, 5, generator=g) < 0.5, "b.weight": torch.rand(7, generator=g) < 0.5}
    start = {n: torch.randn(m.shape, generator=g) for n, m in mask.items()}
    return BranchContext(cfg=None, replicate=Path("replicate_0"), replicate_seed=replicate_seed, level=level, seed=seed,
                         main_mask=mask, main_start=start, unused=frozenset())


def test_registry_keys_are_the_branches_own_names_with_distinct_labels() -> None:
    branches = registry()
    assert list(branches) == sorted(branches) and branches
    for name, branch in branches.items():
        assert isinstance(branch, Branch) and type(branch) is not Branch
        assert branch.name == name and branch.label and branch.changes, name
    labels = [b.label for b in branches.values()]
    assert len(set(labels)) == len(labels) and "ticket" not in labels
    assert registry() is registry()  # cached: one instance per branch


def test_branch_label_maps_main_to_ticket_every_branch_to_its_label_and_unknowns_through() -> None:
    for name, branch in registry().items():
        assert branch_label(name) == branch.label
    assert branch_label("main") == "ticket"
    assert branch_label("no_such_branch") == "no_such_branch"


def test_get_branch_returns_the_registry_entry_and_refuses_an_unknown_name_listing_the_valid_ones() -> None:
    for name, branch in registry().items():
        assert get_branch(name) is branch
    with pytest.raises(MirlError) as info:
        get_branch("random_prun")
    message = str(info.value)
    assert "'random_prun'" in message and all(name in message for name in registry())


def test_branch_seeds_are_deterministic_31_bit_and_distinct_over_replicate_level_and_branch() -> None:
    keys = list(itertools.product(range(4), range(5), sorted(registry())))
    seeds = {key: branch_seed(*key) for key in keys}
    assert all(seeds[key] == branch_seed(*key) for key in keys)
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds.values())
    assert len(set(seeds.values())) == len(keys), "two (replicate, level, branch) share a seed"
    # numbers given as other integer types give the same seed (the seed depends on the values alone)
    assert branch_seed(torch.tensor(2).item(), True, "stability") == branch_seed(2, 1, "stability")


def test_base_branch_is_main_itself_with_copies_not_views() -> None:
    ctx, base = _context(), Branch()
    mask, start = base.mask(ctx), base.starting_weights(ctx)
    assert mask.keys() == ctx.main_mask.keys() and start.keys() == ctx.main_start.keys()
    assert all(torch.equal(mask[n], ctx.main_mask[n]) and torch.equal(start[n], ctx.main_start[n]) for n in mask)
    mask["a.weight"].fill_(False)
    start["a.weight"].fill_(123.0)
    assert bool(ctx.main_mask["a.weight"].any()) and not bool((ctx.main_start["a.weight"] == 123.0).any())
    assert base.data_seed(ctx) == ctx.replicate_seed != ctx.seed
    assert base.after_training(ctx, torch.nn.Linear(1, 1), lambda net, limit: {}) == {}
    assert base.is_current(None, {}) is True


def test_which_branches_run_at_the_dense_level() -> None:
    for name, branch in registry().items():
        assert branch.runs_at(1) and branch.runs_at(3), name
        assert branch.runs_at(0) == branch.runs_at_level_zero, name
    assert get_branch("stability").runs_at(0) and not get_branch("random_reinit").runs_at(0)
    assert [n for n, b in registry().items() if not b.is_control] == ["stability"]
