"""Stability: linear mode connectivity (Frankle, Dziugaite, Roy & Carbin, ICML 2020, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis").

From main's starting point at level k (its reset or rewound weights and its mask) a second copy
is trained with another data order and other degradation draws, and main's step budget. The
network is scored on the linear path between the two trained copies: with P(a) the mean test
PSNR over tasks of (1 - a) * theta_A + a * theta_B (both masked alike, so every point is), the
**barrier** is max over a of [mean(P(0), P(1)) - P(a)], in dB, the paper's error barrier with
PSNR for error. A subnetwork is stable when its barrier is about 0.

The path is scored on the same number of test crops from every held-out photo
(``stability_eval_limit`` crops per photo, evenly spaced over the photo's crops; 0 = every test
image), so no photo is left out; test images whose names carry no photo (a benchmark folder) are
all scored. Beside the barrier, ``metrics.json`` records the gain over the degraded input at both
ends (a barrier is large or small against that) and the distance ratio
||theta_A - theta_B|| / ||theta_A - theta_start|| (how far apart SGD noise takes the two copies,
against how far training moved main from the start both copies share). The ``evaluate`` a study
passes reads the path's ends off the scores both trained copies already have, when they cover
every test image (:func:`mirl.study.lottery._known_scores`).

Example:
    >>> barrier([{"alpha": 0.0, "psnr": 30.0}, {"alpha": 0.5, "psnr": 28.0}, {"alpha": 1.0, "psnr": 29.0}])
    1.5
    >>> photo_of("SOTS/barbara-r1c2_0.95_2_hazy"), photo_of("Rain100L/rain-042")
    ('barbara', None)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import torch

from . import Branch, BranchContext, Evaluate

# 2: crops per photo (not the first N names), gain over the input and the distance ratio recorded.
PATH_VERSION = 2
_CROP = re.compile(r"(?:.*/)?([^/_-]+)-r\d+c\d+(?:_[^/]*)?")  # <photo>-r<row>c<col>[_<degradation>] (mirl.data.make_dataset)


def photo_of(name: str) -> str | None:
    """The photo a built-in test crop comes from (names ``<photo>-r<row>c<col>...``), else ``None``."""
    found = _CROP.fullmatch(name)
    return found.group(1) if found else None


def path_images(names: Sequence[str], per_photo: int) -> list[int]:
    """Indices of the test images of one task (``names``, sorted) for the linear path: from every
    photo the same number of crops, ``per_photo`` or the fewest crops any photo has, evenly spaced
    over each photo's crops; every image when ``per_photo`` is 0 or a name carries no photo.

    Example:
        >>> names = [f"Corpus/a-r0c{i}" for i in range(6)] + ["Corpus/b-r0c0", "Corpus/b-r0c1"]
        >>> path_images(names, 2), path_images(names, 3), len(path_images(names, 0))
        ([1, 4, 6, 7], [1, 4, 6, 7], 8)
        >>> path_images(["rain-001", "rain-002", "rain-003"], 2)
        [0, 1, 2]
    """
    photos = [photo_of(n) for n in names]
    if per_photo <= 0 or None in photos:
        return list(range(len(names)))
    by_photo: dict[str, list[int]] = {}
    for i, photo in enumerate(photos):
        by_photo.setdefault(photo, []).append(i)  # type: ignore[arg-type]
    k = min(per_photo, *(len(v) for v in by_photo.values()))
    return sorted(crops[(2 * j + 1) * len(crops) // (2 * k)] for crops in by_photo.values() for j in range(k))


def images_per_photo(names: Sequence[str]) -> dict[str, int] | None:
    """``{photo: crops scored}`` of the names a path was scored on; ``None`` when a name carries no photo.

    Example:
        >>> images_per_photo(["Corpus/a-r0c1", "Corpus/a-r1c1", "Corpus/b-r0c0"])
        {'a': 2, 'b': 1}
    """
    photos = [photo_of(n) for n in names]
    return None if None in photos else dict(Counter(photos))  # type: ignore[arg-type]


def distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], names: Sequence[str]) -> float:
    """The Euclidean distance between ``a`` and ``b`` over the tensors ``names`` (float64).

    Example:
        >>> distance({"w": torch.tensor([0.0, 3.0])}, {"w": torch.tensor([4.0, 0.0])}, ["w"])
        5.0
    """
    total = sum(float(torch.sum((a[n].detach().cpu().double() - b[n].detach().cpu().double()) ** 2)) for n in names)
    return math.sqrt(total)


def interpolate(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * a + alpha * b`` for every tensor (exactly ``a`` at 0 and ``b`` at 1).

    Example:
        >>> interpolate({"w": torch.tensor([0.0, 2.0])}, {"w": torch.tensor([4.0, 2.0])}, 0.25)["w"].tolist()
        [1.0, 2.0]
    """
    if alpha == 0.0:
        return {n: t.clone() for n, t in a.items()}
    if alpha == 1.0:
        return {n: b[n].clone() for n in a}
    return {n: torch.lerp(a[n], b[n], alpha) for n in a}


def barrier(path: Sequence[Mapping[str, Any]]) -> float:
    """max over the path of [mean(P(0), P(1)) - P(alpha)] (dB); the path must hold alpha 0 and 1."""
    by_alpha = {float(p["alpha"]): float(p["psnr"]) for p in path}
    if 0.0 not in by_alpha or 1.0 not in by_alpha:
        raise ValueError("the path needs its end points alpha = 0 and alpha = 1")
    ends = (by_alpha[0.0] + by_alpha[1.0]) / 2
    return max(ends - value for value in by_alpha.values())


def linear_path(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alphas: Sequence[float],
                net: torch.nn.Module, score: Evaluate, limit: int | Callable[[Sequence[str]], Sequence[int]]) -> list[dict[str, Any]]:
    """Score ``net`` loaded with each point of the path from ``a`` to ``b`` on the images ``limit``
    picks: one ``{"alpha", "psnr" (mean over tasks), "gain" (mean over tasks of PSNR - input PSNR),
    "tasks": {task: psnr}, "images", "per_image": {task: {name: psnr}}}`` per alpha."""
    points = []
    for alpha in alphas:
        net.load_state_dict(interpolate(a, b, float(alpha)))
        tasks = score(net, limit)["tasks"]
        points.append({"alpha": float(alpha), "psnr": sum(t["psnr"] for t in tasks.values()) / len(tasks),
                       "gain": sum(t["psnr"] - t["input_psnr"] for t in tasks.values()) / len(tasks),
                       "tasks": {name: t["psnr"] for name, t in tasks.items()},
                       "images": sum(int(t["images"]) for t in tasks.values()),
                       "per_image": {name: {i["name"]: i["psnr"] for i in t["per_image"]} for name, t in tasks.items()}})
    return points


class Stability(Branch):
    name = "stability"
    label = "stability copy"
    changes = "SGD noise: another data order and degradation draws (same mask, same start); then the linear path"
    runs_at_level_zero = True
    needs_trained_level = True  # the linear path ends at main's trained level k
    is_control = False

    def data_seed(self, ctx: BranchContext) -> int:
        return ctx.seed

    def after_training(self, ctx: BranchContext, trained: torch.nn.Module, evaluate: Evaluate) -> dict[str, Any]:
        import copy
        import functools

        from mirl.models import load_checkpoint
        from mirl.paths import level_dir, model_file

        main, _ = load_checkpoint(model_file(level_dir(ctx.replicate, ctx.level)))
        alphas = [float(a) for a in ctx.cfg.stability_alphas]
        per_photo = int(ctx.cfg.stability_eval_limit)
        net = copy.deepcopy(trained)
        device = next(trained.parameters()).device
        theta_b = {n: t.detach().clone() for n, t in trained.state_dict().items()}
        theta_a = {n: t.to(device) for n, t in main.state_dict().items()}
        path = linear_path(theta_a, theta_b, alphas, net, evaluate, functools.partial(path_images, per_photo=per_photo))
        ends = {float(p["alpha"]): p for p in path}
        # Both copies started from main's starting weights of this level, masked alike (pruned weights 0).
        mask = self.mask(ctx)
        start = {n: torch.where(mask[n].to(t.device).bool(), t, torch.zeros_like(t)) if n in mask else t
                 for n, t in self.starting_weights(ctx).items()}
        params = [n for n, _ in trained.named_parameters()]
        apart, moved = distance(theta_a, theta_b, params), distance(theta_a, start, params)
        names = {task: sorted(images) for task, images in path[0]["per_image"].items()}
        return {"path": path, "barrier": barrier(path), "alphas": alphas, "path_eval_limit": per_photo,
                "path_version": PATH_VERSION,
                "path_images": names,
                "path_images_per_photo": {task: images_per_photo(n) for task, n in names.items()},
                "gain_ends": (ends[0.0]["gain"] + ends[1.0]["gain"]) / 2,
                "distance": {"a_b": apart, "a_start": moved, "ratio": apart / moved if moved > 0 else None}}

    def is_current(self, cfg: Any, metrics: Mapping[str, Any]) -> bool:
        return (metrics.get("path_version") == PATH_VERSION
                and metrics.get("alphas") == [float(a) for a in cfg.stability_alphas]
                and metrics.get("path_eval_limit") == int(cfg.stability_eval_limit))
