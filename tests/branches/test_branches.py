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


def test_every_branch_declares_a_version_and_options_with_defaults_and_help() -> None:
    """Issue 34, parts 2 and 3: a node records its branch's version and options; the default
    options name no variant (the folder is the branch's name)."""
    from mirl.branches import MAIN_VERSION, Option, node_code

    assert isinstance(MAIN_VERSION, int) and MAIN_VERSION >= 1
    for name, branch in registry().items():
        assert isinstance(branch.version, int) and branch.version >= 1, name
        assert branch.folder == name and branch.title == branch.label and branch.non_default == {}, name
        for key, option in branch.options.items():
            assert isinstance(option, Option) and len(option.help) > 15 and option.parse(option.default) == option.default, (name, key)
            assert not option.choices or option.default in option.choices, (name, key)
        assert node_code(name) == {"version": branch.version, "options": branch.settings}


def test_a_variant_is_named_by_its_non_default_options_and_parsed_back() -> None:
    variant = get_branch("random_prune-scope_global")
    assert type(variant) is type(registry()["random_prune"]) and variant.settings == {"scope": "global"}
    assert variant.folder == "random_prune-scope_global" and branch_label(variant.folder) == "random pruning (scope=global)"
    assert get_branch("random_prune-scope_layerwise") is registry()["random_prune"]  # a default option is no variant
    with pytest.raises(MirlError, match="'size_2' is not <option>_<value> of branch 'random_prune'"):
        get_branch("random_prune-size_2")


def test_the_doctest_of_the_registry_holds_when_a_branch_is_added(monkeypatch) -> None:
    """Issue 34, part 3: a new branch broke the ``sorted(registry())`` doctest."""
    import doctest

    import mirl.branches as package

    class Extra(Branch):
        name, label, changes = "zz_extra", "extra", "nothing"

    found = {**registry(), "zz_extra": Extra()}
    monkeypatch.setattr(package, "registry", lambda: found)
    tests = [t for t in doctest.DocTestFinder().find(package) if t.name == "mirl.branches"]
    result = doctest.DocTestRunner().run(tests[0], out=lambda text: None)
    assert result.attempted and not result.failed


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
