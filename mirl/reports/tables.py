"""The small tables and headline numbers of the single-run notebooks: per-image PSNR of a
restoration gallery (03), a study's masks per block and per tensor (04), and a checkpoint's
per-task scores (05).

They summarise what :func:`mirl.analysis.gallery.gallery_samples` and :func:`mirl.analysis.mask_compare.mask_layer_table`
return, and a checkpoint's per-task scores table (columns ``task`` and ``psnr``); statistics over replicates, with intervals, are
:mod:`mirl.analysis.evidence`. Headline keys name their unit and metric convention, as the reports index
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

    ``samples`` are those of :func:`mirl.analysis.gallery.gallery_samples`.

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
    """The rows of a :func:`mirl.analysis.mask_compare.mask_layer_table` whose tensor is at least 2-D in
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


def block_table(summary: pd.DataFrame, series: str, labels: Mapping[Any, str] | None = None,
                value: str = "jaccard", expected: str | None = "random_jaccard") -> pd.DataFrame:
    """Rows of :func:`mirl.analysis.mask_compare.overlap_summary` as a table to show: one row per block
    (in network order), for each value of ``series`` (a branch, a level) a column ``value``
    and, beside it, the random expectation.

    Example:
        >>> s = pd.DataFrame({"block": ["output", "latent"], "branch_b": "random_prune",
        ...                   "jaccard": [0.41, 0.53], "random_jaccard": [0.42, 0.54]})
        >>> block_table(s, "branch_b", {"random_prune": "random pruning"}).to_dict("split")["data"]
        [[0.53, 0.54], [0.41, 0.42]]
        >>> list(block_table(s, "branch_b").columns)
        [('random_prune', 'Jaccard'), ('random_prune', 'random masks')]
    """
    from mirl.analysis.mask_compare import block_order

    blocks = block_order(summary["block"])
    frames = {}
    for key in dict.fromkeys(summary[series]):
        sub = summary[summary[series] == key].set_index("block").reindex(blocks)
        name = (labels or {}).get(key, str(key))
        frames[(name, "Jaccard" if value == "jaccard" else value)] = sub[value]
        if expected:
            frames[(name, "random masks")] = sub[expected]
    table = pd.DataFrame(frames)
    table.index.name = "block"
    return table


def tensor_table(scan: Any, level: int) -> pd.DataFrame:
    """Per tensor at ``level`` (means over replicates): block, weights, kept (%), kept of the
    previous level's kept weights (%), the Jaccard index with each branch, and between
    replicates with its random expectation. Columns a study lacks are left out.

    ``scan`` is :func:`mirl.analysis.mask_compare.scan_study` output.
    """
    from mirl.branches import branch_label
    from mirl.analysis.mask_compare import BRANCH_PAIR, NEXT_LEVEL_PAIR, REPLICATE_PAIR, block_order
    from mirl.paths import MAIN

    nodes = scan.densities[(scan.densities["level"] == level) & (scan.densities["branch"] == MAIN)]
    table = nodes.assign(density=nodes["kept"] / nodes["size"]).groupby("tensor", sort=False).agg(
        block=("block", "first"), weights=("size", "first"), kept=("density", "mean"))
    table["kept"] *= 100
    pairs = scan.pairs[scan.pairs["level_b"] == level]
    union = pairs["kept_a"] + pairs["kept_b"] - pairs["both"]
    expected_both = pairs["kept_a"] * pairs["kept_b"] / pairs["size"]
    pairs = pairs.assign(jaccard=(pairs["both"] / union.where(union > 0)).fillna(1.0),
                         random=(expected_both / (pairs["kept_a"] + pairs["kept_b"] - expected_both).where(union > 0)).fillna(1.0),
                         survival=100 * pairs["both"] / pairs["kept_a"].where(pairs["kept_a"] > 0))

    def mean(rows: pd.DataFrame, column: str) -> pd.Series:
        return rows.groupby("tensor", sort=False)[column].mean().reindex(table.index)

    previous = pairs[pairs["kind"] == NEXT_LEVEL_PAIR]
    if not previous.empty:
        table[f"kept of level {int(previous['level_a'].iloc[0])}'s kept (%)"] = mean(previous, "survival")
    for branch in sorted(set(pairs.loc[pairs["kind"] == BRANCH_PAIR, "branch_b"])):
        rows = pairs[(pairs["kind"] == BRANCH_PAIR) & (pairs["branch_b"] == branch)]
        table[f"Jaccard: ticket vs {branch_label(branch)}"] = mean(rows, "jaccard")
    replicate = pairs[pairs["kind"] == REPLICATE_PAIR]
    if not replicate.empty:
        table["Jaccard: replicate vs replicate"] = mean(replicate, "jaccard")
        table["Jaccard: random masks of those densities"] = mean(replicate, "random")
    order = {b: i for i, b in enumerate(block_order(table["block"]))}
    return table.sort_values("block", key=lambda c: c.map(order), kind="stable")


def _count(n: int, noun: str) -> str:
    """``1 pair``, ``3 pairs``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def mask_study_headline(scan: Any, overlap: pd.DataFrame, level: int) -> dict[str, Any]:
    """Headline of the mask explorer at ``level``: replicates (n), the ticket's kept weights (%, 1
    decimal), the Jaccard index between replicates and that of random masks of the same densities
    (3 decimals; from 2 replicates), the ticket against random pruning and its random expectation
    (when the study has that branch), and under global scope the block that keeps the fewest weights.

    ``scan`` and ``overlap`` are :func:`mirl.analysis.mask_compare.scan_study` and
    :func:`mirl.analysis.mask_compare.block_overlap` outputs.
    """
    from mirl.analysis.mask_compare import BRANCH_PAIR, REPLICATE_PAIR, WHOLE, block_densities, overlap_summary

    at_level = scan.densities[(scan.densities["level"] == level) & (scan.densities["branch"] == "main")]
    replicates = sorted(set(at_level["replicate"]))
    density = block_densities(scan.densities).loc[level]
    numbers: dict[str, Any] = {"replicates (n)": len(replicates),
                               f"ticket at level {level}: weights kept (% of prunable)": round(100 * float(density[WHOLE]), 1)}
    pairs = overlap_summary(overlap, REPLICATE_PAIR)
    pairs = pairs[(pairs["level_b"] == level) & (pairs["block"] == WHOLE)]
    if not pairs.empty:
        row = pairs.iloc[0]
        key = f"replicate vs replicate at level {level}"
        numbers[f"{key}: Jaccard of kept weights (n = {len(replicates)} replicates, {_count(int(row['n']), 'pair')})"] = \
            round(float(row["jaccard"]), 3)
        numbers[f"{key}: Jaccard of random masks of the same densities"] = round(float(row["random_jaccard"]), 3)
    branch = overlap_summary(overlap, BRANCH_PAIR)
    branch = branch[(branch["level_b"] == level) & (branch["block"] == WHOLE) & (branch["branch_b"] == "random_prune")]
    if not branch.empty:
        row = branch.iloc[0]
        key = f"ticket vs random pruning at level {level}"
        numbers[f"{key}: Jaccard of kept weights (n = {_count(int(row['n']), 'replicate')})"] = round(float(row["jaccard"]), 3)
        numbers[f"{key}: Jaccard of random masks of the same densities"] = round(float(row["random_jaccard"]), 3)
    if scan.scope != "layerwise" and level > 0:
        blocks = density.drop(WHOLE)
        key = f"block keeping the fewest weights at level {level} ({scan.scope} scope)"
        numbers[key] = f"{blocks.idxmin()}: {100 * blocks.min():.1f}%"
    return numbers


def scope_sentence(scan: Any, level: int) -> str:
    """One sentence (Markdown) on what block densities mean under the study's scope at ``level``.

    Example:
        >>> import types
        >>> d = pd.DataFrame({"replicate": 0, "level": 1, "branch": "main", "tensor": ["latent.w", "encoder_level1.w", "output.weight"],
        ...                   "block": ["latent", "encoder 1", "output"], "size": [100, 100, 10], "kept": [30, 31, 6]})
        >>> print(scope_sentence(types.SimpleNamespace(scope="layerwise", densities=d), 1))  # doctest: +NORMALIZE_WHITESPACE
        Under **layer-wise** scope every tensor keeps the same fraction of its weights by construction (the output
        convolution is pruned at half the rate), so the blocks keep equal shares: at level 1, 30.0–31.0% each
        (output: 60.0%). What differs is *which* weights they keep: the sections below.
    """
    from mirl.analysis.mask_compare import WHOLE, block_densities

    density = block_densities(scan.densities).loc[level].drop(WHOLE)
    if (density >= 1.0).all():
        return f"Level {level} is the dense network: every block keeps all its weights."
    if scan.scope == "layerwise":
        rest = density.drop("output", errors="ignore")
        output = f" (output: {100 * density['output']:.1f}%)" if "output" in density else ""
        return ("Under **layer-wise** scope every tensor keeps the same fraction of its weights by construction (the output "
                f"convolution is pruned at half the rate), so the blocks keep equal shares: at level {level}, "
                f"{100 * rest.min():.1f}–{100 * rest.max():.1f}% each{output}. What differs is *which* weights they keep: "
                "the sections below.")
    return (f"Under **{scan.scope}** scope one magnitude threshold runs over every prunable tensor, so the blocks lose weights "
            f"at different rates: at level {level} they keep {100 * density.min():.1f}% ({density.idxmin()}) to "
            f"{100 * density.max():.1f}% ({density.idxmax()}).")


# --------------------------------------------------------------------------- checkpoint (notebook 05)


def checkpoint_headline(table: pd.DataFrame, convention: str) -> dict[str, float]:
    """The PSNR gain over the degraded input (dB, 2 decimals) per task of a checkpoint's scores
    table (one row per task, as :func:`mirl.scoring.evaluate.results_rows` makes; its ``average`` row is
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
    from mirl.scoring.metrics import harm_warning

    return [harm_warning(task, out - inp) for task, out, inp in zip(table["task"], table["psnr"], table["input_psnr"]) if out < inp]


__all__ = ["below_input", "block_table", "checkpoint_headline", "gallery_headline", "gallery_psnr_rows", "mask_pair_headline",
           "mask_study_headline", "matrix_layers", "overall_density", "per_image_psnr", "scope_sentence", "tensor_table"]
