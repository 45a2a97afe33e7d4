"""mirl.branches.stability: interpolation, the barrier, the scored linear path and the branch's rules."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from mirl.branches import BranchContext, get_branch
from mirl.branches.stability import PATH_VERSION, barrier, distance, images_per_photo, interpolate, linear_path, path_images, photo_of


def _pair() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(4, 3, generator=g), "b": torch.randn(3, generator=g)}
    b = {"w": torch.randn(4, 3, generator=g), "b": torch.randn(3, generator=g), "extra": torch.ones(1)}
    return a, b


def test_interpolation_at_0_and_1_is_exactly_the_endpoints_as_copies() -> None:
    a, b = _pair()
    at0, at1 = interpolate(a, b, 0.0), interpolate(a, b, 1.0)
    assert at0.keys() == at1.keys() == a.keys()  # b's extra tensor is not taken
    for name in a:
        assert torch.equal(at0[name], a[name]) and torch.equal(at1[name], b[name])
        assert at0[name].data_ptr() != a[name].data_ptr() and at1[name].data_ptr() != b[name].data_ptr()
    at0["w"].zero_()
    assert bool(a["w"].any())


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.9])
def test_interpolation_between_is_the_weighted_mean(alpha: float) -> None:
    a, b = _pair()
    mid = interpolate(a, b, alpha)
    for name in a:
        assert torch.allclose(mid[name], (1 - alpha) * a[name] + alpha * b[name], atol=1e-6)


def test_barrier_is_the_largest_drop_below_the_endpoints_mean() -> None:
    path = [{"alpha": 0.0, "psnr": 30.0}, {"alpha": 0.5, "psnr": 26.0}, {"alpha": 0.25, "psnr": 27.0},
            {"alpha": 1.0, "psnr": 32.0}]
    assert barrier(path) == pytest.approx(31.0 - 26.0)
    flat = [{"alpha": a, "psnr": 30.0} for a in (0.0, 0.5, 1.0)]
    assert barrier(flat) == 0.0
    above = [{"alpha": 0.0, "psnr": 30.0}, {"alpha": 0.5, "psnr": 35.0}, {"alpha": 1.0, "psnr": 30.0}]
    assert barrier(above) == 0.0  # the endpoints themselves are on the path: never negative


@pytest.mark.parametrize("alphas", [[0.0, 0.5], [0.5, 1.0], []])
def test_barrier_without_both_endpoints_is_refused(alphas: list[float]) -> None:
    with pytest.raises(ValueError, match="alpha = 0 and alpha = 1"):
        barrier([{"alpha": a, "psnr": 1.0} for a in alphas])


def test_linear_path_scores_the_network_loaded_with_each_point() -> None:
    """The scorer sees the interpolated weights; psnr is the mean over tasks, images their sum."""
    net = torch.nn.Linear(3, 1, bias=False)
    a, b = {"weight": torch.zeros(1, 3)}, {"weight": torch.full((1, 3), 2.0)}
    seen: list[tuple[float, int]] = []

    def score(network: torch.nn.Module, limit: int) -> dict[str, Any]:
        value = float(network.weight.detach().mean())
        seen.append((value, limit))
        return {"tasks": {"derain": {"psnr": 20.0 + value, "input_psnr": 18.0, "images": 2,
                                     "per_image": [{"name": "x-r0c0", "psnr": 20.0 + value}]},
                          "denoise_25": {"psnr": 30.0 - value, "input_psnr": 24.0, "images": 3, "per_image": []}}}

    path = linear_path(a, b, [0, 0.25, 1], net, score, limit=4)
    assert [p["alpha"] for p in path] == [0.0, 0.25, 1.0] and all(isinstance(p["alpha"], float) for p in path)
    assert seen == [(0.0, 4), (0.5, 4), (2.0, 4)]
    for point, (value, _) in zip(path, seen):
        assert point["tasks"] == {"derain": 20.0 + value, "denoise_25": 30.0 - value}
        assert point["psnr"] == pytest.approx(25.0) and point["images"] == 5
        assert point["gain"] == pytest.approx(((20.0 + value - 18.0) + (30.0 - value - 24.0)) / 2)
        assert point["per_image"] == {"derain": {"x-r0c0": 20.0 + value}, "denoise_25": {}}


def _crops(photo: str, rows: int, cols: int, suffix: str = "") -> list[str]:
    return [f"SOTS/{photo}-r{r}c{c}{suffix}" for r in range(rows) for c in range(cols)]


def test_the_path_sees_the_same_number_of_crops_from_every_photo() -> None:
    """Issue 31: the old limit took the first 8 names (6 crops of barbara, 2 of china; kodim23 and
    monarch never seen). Now: N crops of every photo, evenly spread, as many from each."""
    names = sorted(_crops("barbara", 3, 2, "_0.9_2_hazy") + _crops("china", 1, 2, "_1_0.6_hazy")
                   + _crops("kodim23", 3, 2, "_0.8_1_hazy") + _crops("monarch", 3, 2, "_1_2_hazy"))
    for per_photo, expected in [(2, 2), (5, 2), (1, 1)]:  # china has 2 crops: at most 2 from each
        chosen = [names[i] for i in path_images(names, per_photo)]
        assert images_per_photo(chosen) == {"barbara": expected, "china": expected, "kodim23": expected, "monarch": expected}
    assert [names[i] for i in path_images(names, 2) if photo_of(names[i]) == "barbara"] == \
        ["SOTS/barbara-r0c1_0.9_2_hazy", "SOTS/barbara-r2c0_0.9_2_hazy"]  # the 2nd and 5th of 6: spread over the photo
    assert path_images(names, 0) == list(range(len(names)))


def test_a_benchmark_without_photo_names_is_scored_on_every_image() -> None:
    names = ["Rain100L/rain-001", "Rain100L/rain-002", "Rain100L/norain-003"]
    assert path_images(names, 2) == [0, 1, 2] and images_per_photo(names) is None
    assert photo_of("Corpus/monarch") is None and photo_of("Upload/kodim23-r2c1_jpeg") == "kodim23"


def test_distance_is_the_euclidean_norm_over_the_named_tensors() -> None:
    a, b = _pair()
    expected = torch.sqrt(((a["w"] - b["w"]) ** 2).sum() + ((a["b"] - b["b"]) ** 2).sum())
    assert distance(a, b, ["w", "b"]) == pytest.approx(float(expected))
    assert distance(a, b, ["w"]) == pytest.approx(float(torch.linalg.vector_norm(a["w"] - b["w"])))


def _context(seed: int = 17) -> BranchContext:
    cfg = SimpleNamespace(stability_alphas=[0, 0.5, 1], stability_eval_limit=2)
    return BranchContext(cfg=cfg, replicate=Path("replicate_0"), replicate_seed=4, level=1, seed=seed,
                         main_mask={}, main_start={}, unused=frozenset())


def test_stability_copy_changes_only_the_data_seed_and_checks_its_settings() -> None:
    rule, ctx = get_branch("stability"), _context()
    assert rule.data_seed(ctx) == ctx.seed != ctx.replicate_seed
    assert rule.runs_at(0) and not rule.is_control
    current = {"alphas": [0.0, 0.5, 1.0], "path_eval_limit": 2, "path_version": PATH_VERSION}
    assert rule.is_current(ctx.cfg, current)
    assert not rule.is_current(ctx.cfg, {**current, "alphas": [0.0, 1.0]})
    assert not rule.is_current(ctx.cfg, {**current, "path_eval_limit": 0})
    old = dict(current)
    del old["path_version"]  # issue 31: a node scored by the old code (first N images by name) is not current
    assert not rule.is_current(ctx.cfg, old)
    assert not rule.is_current(ctx.cfg, {})
