"""Pruning by any score with exact counts (mirl.pruning.ranking)."""

from __future__ import annotations

import pytest
import torch

from mirl.pruning.ranking import prune_lowest


def _count(mask) -> int:
    return sum(int(m.sum()) for m in mask.values())


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_prune_lowest_removes_exactly_the_fraction_and_keeps_the_dead_dead(scope):
    g = torch.Generator().manual_seed(0)
    scores = {"a.weight": torch.rand(10, 7, generator=g), "b.weight": torch.rand(33, generator=g),
              "output.weight": torch.rand(40, generator=g)}
    previous = {n: torch.rand(s.shape, generator=g) > 0.3 for n, s in scores.items()}
    new = prune_lowest(scores, previous, 0.25, scope)
    assert all(not bool((new[n] & ~previous[n]).any()) for n in scores), "a pruned weight came back"
    if scope == "global":
        alive = _count(previous)
        assert _count(new) == alive - round(0.25 * alive)
    else:
        for n in scores:
            rate = 0.125 if n == "output.weight" else 0.25
            alive = int(previous[n].sum())
            assert int(new[n].sum()) == alive - round(rate * alive), n
    removed = torch.cat([(previous[n] & ~new[n]).reshape(-1) for n in scores])
    kept = torch.cat([new[n].reshape(-1) for n in scores])
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    if scope == "global":
        assert flat[removed].max() <= flat[kept].min()


def test_negative_scores_are_refused():
    with pytest.raises(ValueError, match="scores must be >= 0"):
        prune_lowest({"w": torch.tensor([0.5, -0.1])}, {"w": torch.ones(2, dtype=torch.bool)}, 0.5)
