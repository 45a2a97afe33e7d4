"""mirl.pruning.controls: the random-prune control and the one-shot fraction (Frankle & Carbin 2019)."""

from __future__ import annotations

import pytest
import torch

from mirl.models import build_model
from mirl.pruning.controls import one_shot_fraction, random_prune
from mirl.pruning.magnitude import magnitude_prune


def _masks(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A previous mask and a sparser target inside it, of several shapes."""
    g = torch.Generator().manual_seed(seed)
    previous = {"conv.weight": torch.rand(8, 4, 3, 3, generator=g) < 0.6,
                "proj.weight": torch.rand(20, 10, generator=g) < 0.5,
                "norm.weight": torch.ones(6, dtype=torch.bool)}
    target = {n: m & (torch.rand(m.shape, generator=g) < 0.5) for n, m in previous.items()}
    return previous, target


def test_random_prune_keeps_per_tensor_counts_inside_previous_alive_set() -> None:
    """Same kept count per tensor as the target, only at still-alive positions, same shape and dtype."""
    previous, target = _masks()
    out = random_prune(previous, target, torch.Generator().manual_seed(3))
    assert out.keys() == target.keys()
    for name in target:
        assert out[name].dtype == torch.bool and out[name].shape == target[name].shape
        assert int(out[name].sum()) == int(target[name].sum()), name
        assert not bool((out[name] & ~previous[name]).any()), f"{name}: a weight pruned earlier came back"


def test_random_prune_without_previous_draws_over_the_whole_tensor() -> None:
    """With previous=None every position is eligible: over seeds, positions outside the target are kept too."""
    _, target = _masks()
    union = torch.zeros_like(target["proj.weight"])
    for seed in range(20):
        m = random_prune(None, target, torch.Generator().manual_seed(seed))
        assert int(m["proj.weight"].sum()) == int(target["proj.weight"].sum())
        union |= m["proj.weight"]
    assert bool((union & ~target["proj.weight"]).any())


def test_random_prune_is_reproducible_per_generator_seed() -> None:
    previous, target = _masks()
    a = random_prune(previous, target, torch.Generator().manual_seed(5))
    b = random_prune(previous, target, torch.Generator().manual_seed(5))
    c = random_prune(previous, target, torch.Generator().manual_seed(6))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_random_prune_refuses_more_kept_than_alive_naming_the_tensor() -> None:
    previous = {"layer.weight": torch.tensor([True, False, False, False])}
    target = {"layer.weight": torch.tensor([True, True, True, False])}
    with pytest.raises(ValueError, match=r"layer\.weight: cannot keep 3 weights, only 1 alive"):
        random_prune(previous, target, torch.Generator().manual_seed(0))


def test_random_prune_on_a_magnitude_mask_of_the_tiny_model() -> None:
    """The control for a real ticket keeps the ticket's per-layer counts and total density."""
    torch.manual_seed(0)
    weights = build_model("tiny").state_dict()
    level1 = magnitude_prune(weights, None, 0.2)
    level2 = magnitude_prune(weights, level1, 0.2)
    control = random_prune(level1, level2, torch.Generator().manual_seed(1))
    assert {n: int(m.sum()) for n, m in control.items()} == {n: int(m.sum()) for n, m in level2.items()}
    assert all(not bool((control[n] & ~level1[n]).any()) for n in control)
    assert any(not torch.equal(control[n], level2[n]) for n in control if level2[n].numel() > 10)


@pytest.mark.parametrize("fraction,level", [(0.2, 1), (0.2, 3), (0.5, 4), (0.1, 15)])
def test_one_shot_fraction_equals_compounded_rounds(fraction: float, level: int) -> None:
    """Removing the one-shot fraction leaves what `level` rounds of `fraction` each leave."""
    remaining = 1.0
    for _ in range(level):
        remaining -= remaining * fraction
    assert one_shot_fraction(fraction, level) == pytest.approx(1.0 - remaining, rel=1e-12)


def test_one_shot_fraction_level_zero_prunes_nothing() -> None:
    assert one_shot_fraction(0.2, 0) == 0.0


def test_one_shot_magnitude_prune_matches_iterative_count_on_tiny_model() -> None:
    """One shot at one_shot_fraction(f, k) keeps about as many weights as k iterative rounds of f."""
    torch.manual_seed(0)
    weights = build_model("tiny").state_dict()
    mask = None
    for _ in range(3):
        mask = magnitude_prune(weights, mask, 0.2)
    shot = magnitude_prune(weights, None, one_shot_fraction(0.2, 3))
    iterative, once = sum(int(m.sum()) for m in mask.values()), sum(int(m.sum()) for m in shot.values())
    assert abs(iterative - once) <= 3  # rounding per round only
