"""Restore test images with trained levels, for the restoration galleries of the reports.

Example:
    >>> from mirl.analysis.gallery import gallery_samples, load_level_model                   # doctest: +SKIP
    >>> models = {f"level {k}": load_level_model("runs/smoke_de4d1844", k) for k in (0, 2)}  # doctest: +SKIP
    >>> samples = gallery_samples(models, "datasets/builtin_test64", ["derain"])     # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Sequence

from mirl import paths
PathLike = str | os.PathLike


def load_level_model(run_dir: PathLike, level: int, branch: str = paths.MAIN) -> Any:
    """The trained (masked) network of one level of a study's chain (replicate 0 of a study
    folder, or the replicate given), on the CPU, in eval mode."""
    from mirl.models import load_checkpoint
    from mirl.analysis.results import chain_node

    model, _ = load_checkpoint(paths.model_file(chain_node(run_dir, level, branch)))
    return model.eval()


def pick_levels(available: Sequence[int], wanted: Sequence[int] | None = None, count: int = 2) -> list[int]:
    """Levels to show: ``wanted`` (those that exist), else the dense level plus ``count`` pruned
    ones spread evenly up to the last.

    Example:
        >>> pick_levels([0, 1, 2, 3, 4])
        [0, 2, 4]
        >>> pick_levels([0, 1, 2], wanted=[2, 7])
        [2]
    """
    available = sorted(available)
    if wanted is not None:
        return [lv for lv in wanted if lv in available]
    if len(available) <= count + 1:
        return available
    pruned = available[1:]
    chosen = {pruned[max(0, round(len(pruned) * i / count) - 1)] for i in range(1, count + 1)}
    return [available[0]] + sorted(chosen)


def _to_hwc(tensor: Any) -> Any:
    return tensor.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def photo_of(name: str) -> str:
    """The photo a test image comes from: built-in test crops are named
    ``[<data set>/]<photo>-r<row>c<col>[_<degradation>]``; any other name is its own photo.

    Example:
        >>> photo_of("Corpus/china-r0c1"), photo_of("SOTS/china-r0c0_0.95_0.8_hazy"), photo_of("Rain100L/0013_rainy")
        ('china', 'china', 'Rain100L/0013_rainy')
    """
    match = re.fullmatch(r"(?:.*/)?(.+?)-r\d+c\d+(?:_.*)?", name)
    return match.group(1) if match else name


def one_crop_per_photo(dataset: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of one test image per photo: of a photo's crops, the one whose clean image varies
    most (the most texture; all-sky crops say little). Chosen from the clean images alone,
    before any network sees them; photos keep the data set's order.

    Example:
        >>> import torch
        >>> items = [{"name": n, "clean": torch.full((3, 4, 4), v)} for n, v in [("a-r0c0", 0.5), ("b-r0c0", 0.1)]]
        >>> items[0]["clean"][0, 0, 0] = 1.0  # a-r0c1 is flat, a-r0c0 is not
        >>> one_crop_per_photo(items + [{"name": "a-r0c1", "clean": torch.full((3, 4, 4), 0.5)}])
        [0, 1]
    """
    best: dict[str, tuple[float, int]] = {}
    for index in range(len(dataset)):
        item = dataset[index]
        spread = float(item["clean"].float().std())
        photo = photo_of(item["name"])
        if photo not in best or spread > best[photo][0]:
            best[photo] = (spread, index)
    return [index for _, index in best.values()]


def gallery_samples(
    models: Mapping[str, Any],
    data_root: PathLike,
    tasks: Sequence[str],
    n_images: int | None = 1,
    tile: int | None = None,
    convention: str = "upstream",
    seed: int = 0,
    per_photo: bool = False,
) -> list[dict[str, Any]]:
    """Restore test images of each task with every model, for a gallery: the first ``n_images``,
    or with ``per_photo`` one crop of every held-out photo (:func:`one_crop_per_photo`), at most
    ``n_images`` of them (``None``: all).

    Returns samples for :func:`mirl.reports.viz.gallery`: panels ``degraded input``, one per model (in
    the mapping's order) and ``clean``, each with its PSNR against the clean image under
    ``convention`` (``None`` for the clean panel).

    Example:
        >>> samples = gallery_samples({"level 2": model}, "datasets/builtin_test224", ["derain"], n_images=None, per_photo=True)  # doctest: +SKIP
    """
    import torch

    from mirl.data import expand_tasks
    from mirl.data.datasets import TestDataset
    from mirl.scoring.metrics import psnr
    from mirl.scoring.restore import restore_image

    samples = []
    for task in expand_tasks(list(tasks)):
        dataset = TestDataset(data_root, task, seed=seed)
        indices = one_crop_per_photo(dataset) if per_photo else list(range(len(dataset)))
        for index in indices[:n_images]:
            item = dataset[index]
            clean, degraded = item["clean"], item["degraded"]
            panels = [{"label": "degraded input", "image": _to_hwc(degraded), "psnr": psnr(degraded, clean, convention=convention)}]
            for label, model in models.items():
                with torch.no_grad():
                    restored = restore_image(model, degraded, tile=tile).clamp(0, 1)
                panels.append({"label": label, "image": _to_hwc(restored), "psnr": psnr(restored, clean, convention=convention)})
            panels.append({"label": "clean", "image": _to_hwc(clean), "psnr": None})
            samples.append({"task": task, "name": item["name"], "panels": panels, "convention": convention})
    return samples


def one_per_task(samples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One sample per task for a summary figure, a different photo for each task where there are
    several (task i shows its (i mod n)-th photo).

    Example:
        >>> s = [{"task": t, "name": n} for t in ("derain", "dehaze") for n in ("a", "b")]
        >>> [(x["task"], x["name"]) for x in one_per_task(s)]
        [('derain', 'a'), ('dehaze', 'b')]
    """
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for sample in samples:
        by_task.setdefault(sample["task"], []).append(sample)
    return [shown[i % len(shown)] for i, shown in enumerate(by_task.values())]
