"""Compare sparsity masks: per-layer densities and overlap, across levels and across runs.

The overlap of two masks is their Jaccard index: |kept in A and B| / |kept in A or B| (1.0 when
both keep nothing).

Example:
    >>> import torch
    >>> jaccard(torch.tensor([True, True, False]), torch.tensor([True, False, True]))
    0.3333333333333333
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from mirl.results import level_mask, levels, run_label

PathLike = str | os.PathLike


def jaccard(a: Any, b: Any) -> float:
    """Jaccard index of two boolean masks of one tensor (1.0 when both keep nothing)."""
    a, b = a.bool(), b.bool()
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0


def mask_layer_table(mask_a: Mapping[str, Any], mask_b: Mapping[str, Any]) -> pd.DataFrame:
    """Per-layer comparison of two masks: density of each and their overlap (Jaccard index).

    Example:
        >>> import torch
        >>> a = {"w": torch.tensor([True, True, False, False])}
        >>> b = {"w": torch.tensor([True, False, True, False])}
        >>> mask_layer_table(a, b)[["density_a", "density_b", "jaccard"]].round(3).values.tolist()
        [[0.5, 0.5, 0.333]]
    """
    rows = []
    for name in mask_a:
        if name not in mask_b:
            continue
        a, b = mask_a[name].bool(), mask_b[name].bool()
        if a.shape != b.shape:
            raise ValueError(f"masks disagree on the shape of {name}: {tuple(a.shape)} vs {tuple(b.shape)}")
        rows.append({
            "tensor": name,
            "size": a.numel(),
            "density_a": float(a.float().mean()),
            "density_b": float(b.float().mean()),
            "jaccard": jaccard(a, b),
        })
    return pd.DataFrame(rows, columns=["tensor", "size", "density_a", "density_b", "jaccard"])


def mask_label(run_dir: PathLike, level: int, with_run: bool = False) -> str:
    """Label of one mask: ``level 3`` or, across runs, ``<run label> · level 3``."""
    return f"{run_label(run_dir)} · level {level}" if with_run else f"level {level}"


def mask_collection(run_dirs: Sequence[PathLike]) -> dict[str, dict[str, Any]]:
    """Every finished level's mask of one or more runs, in order: ``{label: mask}``.

    With one run labels are ``level k``; with several they start with the run's label.

    Example:
        >>> masks = mask_collection(["runs/smoke_de4d1844"])   # doctest: +SKIP
        >>> list(masks)                                         # doctest: +SKIP
        ['level 0', 'level 1', 'level 2']
    """
    with_run = len(run_dirs) > 1
    collection: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        for level in levels(run_dir):
            mask = level_mask(run_dir, level)
            if mask:
                collection[mask_label(run_dir, level, with_run)] = mask
    if not collection:
        raise FileNotFoundError(f"no mask in the finished levels of {[str(r) for r in run_dirs]}")
    return collection


def default_mask_pair(run_a: PathLike, run_b: PathLike, level_a: int | None = None, level_b: int | None = None) -> tuple[str, str]:
    """Labels (as in :func:`mask_collection`) of the two masks to compare by default.

    One run: A = ``level_a`` or the first pruned level, B = ``level_b`` or the last level.
    Two runs: A = run A at ``level_a`` or its last level, B = run B at ``level_b`` or its last.
    """
    two = Path(run_a) != Path(run_b)
    done_a, done_b = levels(run_a), levels(run_b)
    if not done_a or not done_b:
        raise FileNotFoundError("a run to compare has no finished level")
    if two:
        a = level_a if level_a is not None else done_a[-1]
    else:
        a = level_a if level_a is not None else (done_a[1] if len(done_a) > 2 else done_a[0])
    b = level_b if level_b is not None else done_b[-1]
    for lv, done, run in ((a, done_a, run_a), (b, done_b, run_b)):
        if lv not in done:
            raise ValueError(f"level {lv} is not a finished level of {run}; finished: {done}")
    return mask_label(run_a, a, two), mask_label(run_b, b, two)
