"""The small tables and headline numbers of the single-run notebooks: per-image PSNR of a
restoration gallery (03), a mask pair's overall densities and overlap (04), and a checkpoint's
per-task scores (05).

They summarise what :func:`mirl.gallery.gallery_samples` and :func:`mirl.mask_compare.mask_layer_table`
return, and a checkpoint's per-task scores table (columns ``task`` and ``psnr``); statistics over replicates, with intervals, are
:mod:`mirl.evidence`. Headline keys name their unit and metric convention, as the reports index
shows them.

Example:
    >>> import pandas as pd
    >>> layers = pd.DataFrame({"tensor": ["conv", "norm"], "size": [90, 10], "density_a": [0.5, 1.0],
    ...                        "density_b": [0.2, 1.0], "jaccard": [0.4, 1.0]})
    >>> mask_pair_headline(layers, "level 1", "level 2")["overall density B (%)"]
    28.0
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd


# --------------------------------------------------------------------------- gallery (notebook 03)


def gallery_psnr_rows(samples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per image and panel that has a PSNR (the clean panel has none): task, image, panel, psnr.

    ``samples`` are those of :func:`mirl.gallery.gallery_samples`.

    Example:
        >>> samples = [{"task": "derain", "name": "1.png", "panels": [
        ...     {"label": "degraded input", "psnr": 21.0}, {"label": "level 0", "psnr": 27.5},
        ...     {"label": "clean", "psnr": None}]}]
        >>> gallery_psnr_rows(samples)[1]
        {'task': 'derain', 'image': '1.png', 'panel': 'level 0', 'psnr': 27.5}
    """
    return [{"task": s["task"], "image": s["name"], "panel": p["label"], "psnr": p["psnr"]}
            for s in samples for p in s["panels"] if p["psnr"] is not None]


def per_image_psnr(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """PSNR per image (rows: task, image, in gallery order) and panel (columns, in gallery order).

    ``rows`` are those of :func:`gallery_psnr_rows`.

    Example:
        >>> rows = [{"task": "derain", "image": "1.png", "panel": "degraded input", "psnr": 21.0},
        ...         {"task": "derain", "image": "1.png", "panel": "level 0", "psnr": 27.5},
        ...         {"task": "derain", "image": "2.png", "panel": "degraded input", "psnr": 23.0},
        ...         {"task": "derain", "image": "2.png", "panel": "level 0", "psnr": 28.5}]
        >>> per_image_psnr(rows).round(1).values.tolist()
        [[21.0, 27.5], [23.0, 28.5]]
        >>> list(per_image_psnr(rows).columns)
        ['degraded input', 'level 0']
    """
    return pd.DataFrame(list(rows)).pivot_table(index=["task", "image"], columns="panel", values="psnr", sort=False)


def gallery_headline(per_image: pd.DataFrame, convention: str) -> dict[str, float]:
    """Mean PSNR (dB, 3 decimals) of the shown images for every panel of a :func:`per_image_psnr` table.

    Example:
        >>> table = pd.DataFrame({"degraded input": [21.0, 23.0], "level 0": [27.5, 28.5]})
        >>> gallery_headline(table, "upstream")
        {'degraded input: mean PSNR of shown images (dB, upstream)': 22.0, 'level 0: mean PSNR of shown images (dB, upstream)': 28.0}
    """
    return {f"{label}: mean PSNR of shown images (dB, {convention})": round(float(per_image[label].mean()), 3)
            for label in per_image.columns}


# --------------------------------------------------------------------------- masks (notebook 04)


def matrix_layers(table: pd.DataFrame, mask: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of a :func:`mirl.mask_compare.mask_layer_table` whose tensor is at least 2-D in
    ``mask`` (weight matrices and kernels; 1-D tensors such as LayerNorm scales are left out).

    Example:
        >>> import torch
        >>> mask = {"conv.weight": torch.ones(4, 2, 3, 3, dtype=torch.bool), "norm.weight": torch.ones(4, dtype=torch.bool)}
        >>> table = pd.DataFrame({"tensor": ["conv.weight", "norm.weight"], "size": [72, 4]})
        >>> list(matrix_layers(table, mask).tensor)
        ['conv.weight']
    """
    return table[[mask[name].dim() >= 2 for name in table["tensor"]]] if len(table) else table


def overall_density(table: pd.DataFrame, column: str = "density_a") -> float:
    """Fraction of the table's weights a mask keeps: its per-layer ``column`` weighted by layer ``size``.

    Example:
        >>> overall_density(pd.DataFrame({"size": [90, 10], "density_a": [0.5, 1.0]}))
        0.55
    """
    return float((table[column] * table["size"]).sum() / table["size"].sum())


def mask_pair_headline(table: pd.DataFrame, label_a: str, label_b: str) -> dict[str, Any]:
    """Headline of a mask comparison: the two masks, the mean per-layer Jaccard index (4 decimals)
    and each mask's overall density in % of the table's weights (2 decimals).

    Example:
        >>> layers = pd.DataFrame({"size": [90, 10], "density_a": [0.5, 1.0], "density_b": [0.2, 1.0],
        ...                        "jaccard": [0.4, 1.0]})
        >>> mask_pair_headline(layers, "level 1", "level 2")
        {'mask A': 'level 1', 'mask B': 'level 2', 'mean per-layer Jaccard A vs B': 0.7, 'overall density A (%)': 55.0, 'overall density B (%)': 28.0}
    """
    return {"mask A": label_a, "mask B": label_b,
            "mean per-layer Jaccard A vs B": round(float(table["jaccard"].mean()), 4),
            "overall density A (%)": round(100 * overall_density(table, "density_a"), 2),
            "overall density B (%)": round(100 * overall_density(table, "density_b"), 2)}


# --------------------------------------------------------------------------- checkpoint (notebook 05)


def checkpoint_headline(table: pd.DataFrame, convention: str) -> dict[str, float]:
    """The PSNR gain over the degraded input (dB, 2 decimals) per task of a checkpoint's scores
    table (one row per task, as :func:`mirl.evaluate.results_rows` makes; its ``average`` row is
    recomputed), then the mean PSNR, the mean gain and the mean SSIM (3 decimals). Tasks marked
    ``trained == False`` are left out: the checkpoint was not trained on them.

    Example:
        >>> table = pd.DataFrame({"task": ["derain", "dehaze", "jpeg"], "psnr": [30.0, 27.0, 20.0],
        ...                       "input_psnr": [28.0, 28.0, 26.0], "ssim": [0.9, 0.8, 0.5], "trained": [True, True, False]})
        >>> checkpoint_headline(table, "upstream")  # doctest: +NORMALIZE_WHITESPACE
        {'derain: PSNR gain over the degraded input (dB, upstream)': 2.0,
         'dehaze: PSNR gain over the degraded input (dB, upstream)': -1.0,
         'mean PSNR (dB, upstream)': 28.5, 'mean PSNR gain over the degraded input (dB, upstream)': 0.5,
         'mean SSIM (upstream)': 0.85}
    """
    table = table[table["task"] != "average"]
    if "trained" in table:
        table = table[table["trained"].astype(bool)]
    gain = table["psnr"] - table["input_psnr"]
    numbers = {f"{task}: PSNR gain over the degraded input (dB, {convention})": round(float(g), 2)
               for task, g in zip(table["task"], gain)}
    numbers[f"mean PSNR (dB, {convention})"] = round(float(table["psnr"].mean()), 2)
    numbers[f"mean PSNR gain over the degraded input (dB, {convention})"] = round(float(gain.mean()), 2)
    if "ssim" in table:
        numbers[f"mean SSIM ({convention})"] = round(float(table["ssim"].mean()), 3)
    return numbers


def below_input(table: pd.DataFrame) -> list[str]:
    """One warning per task (of those it was trained on) whose restored images score below the
    degraded input, on average.

    Example:
        >>> below_input(pd.DataFrame({"task": ["derain", "dehaze"], "psnr": [30.0, 27.0], "input_psnr": [28.0, 28.0]}))
        ['dehaze: the restored images score 1.00 dB below the degraded input']
    """
    table = table[table["task"] != "average"]
    if "trained" in table:
        table = table[table["trained"].astype(bool)]  # a task it was not trained on is shown apart, not warned about
    from mirl.metrics import harm_warning

    return [harm_warning(task, out - inp) for task, out, inp in zip(table["task"], table["psnr"], table["input_psnr"]) if out < inp]


__all__ = ["below_input", "checkpoint_headline", "gallery_headline", "gallery_psnr_rows", "mask_pair_headline", "matrix_layers",
           "overall_density", "per_image_psnr"]
