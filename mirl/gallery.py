"""Restore test images with trained levels, for the restoration galleries of the reports.

Example:
    >>> from mirl.gallery import gallery_samples, load_level_model                   # doctest: +SKIP
    >>> models = {f"level {k}": load_level_model("runs/smoke_de4d1844", k) for k in (0, 2)}  # doctest: +SKIP
    >>> samples = gallery_samples(models, "datasets/builtin_test64", ["derain"])     # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from mirl import paths

PathLike = str | os.PathLike


def load_level_model(run_dir: PathLike, level: int, branch: str = paths.MAIN) -> Any:
    """The trained (masked) network of one level of a study's chain (replicate 0 of a study
    folder, or the replicate given), on the CPU, in eval mode."""
    from mirl.models import load_checkpoint
    from mirl.results import chain_node

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


def gallery_samples(
    models: Mapping[str, Any],
    data_root: PathLike,
    tasks: Sequence[str],
    n_images: int = 1,
    tile: int | None = None,
    convention: str = "upstream",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Restore the first ``n_images`` test images of each task with every model, for a gallery.

    Returns samples for :func:`mirl.viz.gallery`: panels ``degraded input``, one per model (in
    the mapping's order) and ``clean``, each with its PSNR against the clean image under
    ``convention`` (``None`` for the clean panel).
    """
    import torch

    from mirl.data import expand_tasks
    from mirl.data.datasets import TestDataset
    from mirl.metrics import psnr
    from mirl.restore import restore_image

    samples = []
    for task in expand_tasks(list(tasks)):
        dataset = TestDataset(data_root, task, seed=seed)
        for index in range(min(n_images, len(dataset))):
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
