"""The scaling grid (issue 32): does the ticket's gap to the dense network close with budget or width?

A grid is several finished studies, one per cell (a width and a training budget), each with the
ticket (``main``) and its ``random_reinit`` and ``dense_same_size`` branches at two pruned levels.
Per cell: the dense gain (level 0 over the degraded input), the ticket's gain at each level, the
ticket's **share of the dense gain** (per seed: ticket gain / dense gain, each the mean over tasks
of the per-task mean over test images; then a 95% t-interval across seeds; none where the dense
network does not restore, gain <= 0), and the paired
differences ticket - control (:func:`mirl.analysis.evidence.primary_endpoints`: mean over the
pruned levels, t-interval across seeds).

Example:
    >>> cells = [("tiny 1x", "runs/scaling_1a2b3c4d"), ("tiny 4x", "runs/scaling_5e6f7a8b")]   # doctest: +SKIP
    >>> gains, differences = gain_table(cells), difference_table(cells)                     # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import pandas as pd

from mirl.analysis import evidence
from mirl.analysis.stats import TOO_FEW, Interval, replicate_interval
from mirl.errors import MirlError

Cell = tuple[str, "str | os.PathLike"]  # (label, study folder)
TICKET = "ticket"
CONTROLS = ("random_reinit", "dense_same_size")


def planned_densities(model: str, rounds: int, fraction: float, scope: str = "layerwise", rule: str = "conv") -> list[float]:
    """Trainable density (4 digits) after each round of layer-wise magnitude pruning of ``model``:
    layer-wise pruning keeps a fixed count per tensor, so seeded random weights give the study's densities.

    Example:
        >>> planned_densities("tiny", 2, 0.77)
        [0.2805, 0.1148]
    """
    import torch

    from mirl.models import build_model
    from mirl.models.promptir import PromptIR
    from mirl.pruning.magnitude import magnitude_prune
    from mirl.pruning.rules import density_summary

    torch.manual_seed(0)
    weights = {n: p.detach() for n, p in build_model(model).named_parameters()}
    unused = PromptIR.unused_in_forward
    mask, out = None, []
    for _ in range(rounds):
        mask = magnitude_prune(weights, mask, fraction, scope, rule, unused)
        masked = {n: (t * mask[n] if n in mask else t) for n, t in weights.items()}
        out.append(round(float(density_summary(masked, rule, unused)["density_trainable"]), 4))
    return out


def cell_settings(study: str | os.PathLike) -> dict[str, object]:
    """Model, budget (``steps_scale`` and steps per node) and seeds of one cell's study."""
    from mirl.analysis.results import load_config

    cfg = load_config(study)
    scale = int(cfg.get("steps_scale", 1))
    return {"model": cfg.get("model"), "steps_scale": scale, "steps": int(cfg["epochs"]) * scale * int(cfg["steps_per_epoch"]),
            "replicates": int(cfg.get("replicates", 1))}


def _scores(study: str | os.PathLike) -> pd.DataFrame:
    scores = evidence.scores_table(evidence.study_variants(study, list(CONTROLS)))
    if scores.empty:
        raise MirlError(f"{study}: no finished level with per-image scores; finish it with `mirl lottery`")
    return scores


def seed_gains(scores: pd.DataFrame) -> pd.DataFrame:
    """Per label, seed and level: the gain (dB) as the mean over tasks of each task's mean over
    test images, the trainable density and the images behind it."""
    per_task = scores.groupby(["label", "seed", "level", "task"], sort=True).agg(
        gain=("gain", "mean"), images=("gain", "size"), remaining_trainable=("remaining_trainable", "first")).reset_index()
    return per_task.groupby(["label", "seed", "level"], sort=True).agg(
        gain=("gain", "mean"), images=("images", "sum"), remaining_trainable=("remaining_trainable", "first")).reset_index()


def _row(cell: str, settings: dict, iv: Interval, **keys: object) -> dict[str, object]:
    return {"cell": cell, **settings, **keys, "mean": iv.mean, "low": iv.low, "high": iv.high, "seeds": iv.replicates,
            "df": iv.df, "n": iv.sample_size}


def gain_table(cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per cell and quantity: ``dense gain`` (level 0), ``ticket gain`` and ``share of dense
    gain`` at each pruned level; mean, 95% t-interval across seeds (none with one seed), df, n."""
    rows = []
    for cell, study in cells:
        settings = cell_settings(study)
        per_seed = seed_gains(_scores(study))
        ticket = per_seed[per_seed["label"] == TICKET]
        dense = ticket[ticket["level"] == 0].set_index("seed")
        if dense.empty:
            raise MirlError(f"{study}: the dense level (level 0 main) is not finished; finish it with `mirl lottery`")
        rows.append(_row(cell, settings, replicate_interval(dense["gain"].tolist(), int(dense["images"].iloc[0])),
                         quantity="dense gain", level=0, remaining_trainable=1.0))
        for level, group in ticket[ticket["level"] > 0].groupby("level"):
            group = group.set_index("seed").loc[dense.index.intersection(group["seed"])]
            images = int(group["images"].iloc[0])
            where = dict(level=int(level), remaining_trainable=float(group["remaining_trainable"].iloc[0]))
            rows.append(_row(cell, settings, replicate_interval(group["gain"].tolist(), images), quantity="ticket gain", **where))
            dense_gains = dense.loc[group.index, "gain"]
            if (dense_gains <= 0).any():  # a share of a dense network that does not restore means nothing
                iv = Interval(math.nan, math.nan, math.nan, images, len(group), "no share: the dense network does not restore")
                rows.append({**_row(cell, settings, iv, quantity="share of dense gain", **where),
                             "n": f"no share: the dense gain is not above 0 for seed(s) {sorted(dense_gains[dense_gains <= 0].index)}"})
                continue
            share = (group["gain"] / dense_gains).tolist()
            rows.append(_row(cell, settings, replicate_interval(share, images), quantity="share of dense gain", **where))
    return pd.DataFrame(rows)


def difference_table(cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per cell and control: ticket - control in PSNR (dB) on the same seeds and test
    images, the mean over the pruned levels per seed, 95% t-interval across seeds, df and verdict
    (:func:`mirl.analysis.evidence.primary_endpoints`; "too few to tell" below 2 seeds)."""
    parts = []
    for cell, study in cells:
        endpoints = evidence.primary_endpoints(_scores(study), TICKET, "psnr")
        parts.append(endpoints.assign(cell=cell, **cell_settings(study)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def seed_shares(study: str | os.PathLike) -> pd.DataFrame:
    """Per seed and pruned level of one cell: the ticket's share of the dense gain (ticket gain /
    dense gain of the same seed; seeds whose dense network does not restore are left out, and
    named in the ``left_out`` attribute), with the level's trainable density and images."""
    per_seed = seed_gains(_scores(study))
    ticket = per_seed[per_seed["label"] == TICKET]
    dense = ticket[ticket["level"] == 0].set_index("seed")["gain"]
    pruned = ticket[(ticket["level"] > 0) & ticket["seed"].isin(dense.index)].copy()
    pruned["share"] = pruned["gain"] / dense.loc[pruned["seed"]].to_numpy()
    out = pruned[dense.loc[pruned["seed"]].to_numpy() > 0].reset_index(drop=True)
    out.attrs["left_out"] = sorted(int(s) for s in dense[dense <= 0].index)
    return out[["seed", "level", "remaining_trainable", "images", "share"]]


def share_change(base: Cell, other: Cell) -> pd.DataFrame:
    """Does the ticket's share of the dense gain grow from ``base`` to ``other`` (more budget, or
    more width)? Per pruned level, the per-seed difference ``other - base`` on the seeds both
    cells share (same data order and degradation draws; a different network), with its 95%
    t-interval across seeds and verdict ("too few to tell" below 2 seeds).

    Example:
        >>> share_change(("tiny 1x", "runs/scaling_a"), ("tiny 4x", "runs/scaling_b"))  # doctest: +SKIP
    """
    from mirl.analysis.stats import verdict

    (base_label, base_study), (other_label, other_study) = base, other
    a, b = seed_shares(base_study), seed_shares(other_study)
    rows = []
    for level in sorted(set(a["level"]) & set(b["level"])):
        left, right = a[a["level"] == level].set_index("seed"), b[b["level"] == level].set_index("seed")
        seeds = left.index.intersection(right.index)
        if seeds.empty:
            continue
        change = (right.loc[seeds, "share"] - left.loc[seeds, "share"]).tolist()
        iv = replicate_interval(change, int(min(left["images"].iloc[0], right["images"].iloc[0])))
        rows.append({"from": base_label, "to": other_label, "level": int(level),
                     "remaining_trainable": f"{100 * left['remaining_trainable'].iloc[0]:.1f}% -> {100 * right['remaining_trainable'].iloc[0]:.1f}%",
                     "share_from": round(float(left.loc[seeds, "share"].mean()), 3), "share_to": round(float(right.loc[seeds, "share"].mean()), 3),
                     "change": iv.format("", signed=True), "seeds": len(seeds), "verdict": verdict(iv)})
    return pd.DataFrame(rows)


def dense_curves(cells: Sequence[Cell]) -> pd.DataFrame:
    """Per cell and seed, the dense level's learning curve on the validation photos (main level 0's
    ``val_curve``, :mod:`mirl.study.val_curve`): one row per point with its ``step`` and ``gain``
    (dB over the degraded input, mean over tasks). Seeds whose dense
    level recorded no curve (``val_curve_images=0``, or trained before curves existed) are left out.

    Example:
        >>> dense_curves([("tiny 1x", "runs/scaling_1a2b3c4d")]).columns.tolist()  # doctest: +SKIP
        ['cell', 'seed', 'step', 'gain']
    """
    from mirl import paths
    from mirl.analysis.results import levels, load_config, load_metrics

    rows = []
    for cell, study in cells:
        for r in paths.replicate_numbers(study):
            replicate = paths.replicate_dir(study, r)
            curve = load_metrics(replicate, 0).get("val_curve") if 0 in levels(replicate) else None
            seed = load_config(replicate)["seed"]  # the seed scores_table gives this replicate
            rows += [{"cell": cell, "seed": seed, "step": int(p["step"]), "gain": float(p["gain"])} for p in curve or ()]
    return pd.DataFrame(rows, columns=["cell", "seed", "step", "gain"])


def late_rise(curves: pd.DataFrame, intervals: int = 2) -> pd.DataFrame:
    """Has the dense network flattened? Per cell: the gain on the validation photos at the last
    point minus the gain ``intervals`` points earlier (2 of the curve's 8: the last quarter of the
    steps), per seed, with a 95% t-interval across seeds. An interval above 0 says that it was still
    learning when its budget ended.

    Example:
        >>> c = pd.DataFrame({"cell": "a", "seed": [0, 0, 0, 1, 1, 1], "step": [4, 6, 8] * 2,
        ...                   "gain": [0.5, 1.0, 1.3, 0.6, 1.1, 1.3]})
        >>> r = late_rise(c).iloc[0]
        >>> int(r["from_step"]), round(float(r["mean"]), 2)
        (4, 0.75)
    """
    rows = []
    for cell, part in curves.groupby("cell", sort=False):
        rises, starts = [], set()
        for _, seed in part.sort_values("step").groupby("seed"):
            if len(seed) > intervals:
                rises.append(float(seed["gain"].iloc[-1] - seed["gain"].iloc[-1 - intervals]))
                starts.add(int(seed["step"].iloc[-1 - intervals]))
        if not rises:
            continue
        iv = replicate_interval(rises, 0)
        verdict = (TOO_FEW if iv.replicates < 2 else "still rising" if iv.low > 0 else "flat or falling" if iv.high <= 0
                   else "not resolved")
        rows.append({"cell": cell, "from_step": min(starts), "to_step": int(part["step"].max()), "mean": iv.mean,
                     "low": iv.low, "high": iv.high, "seeds": iv.replicates, "df": iv.df, "verdict": verdict})
    return pd.DataFrame(rows)


def headline(gains: pd.DataFrame, differences: pd.DataFrame, changes: pd.DataFrame | None = None,
             rise: pd.DataFrame | None = None) -> dict[str, str]:
    """The index's headline: the ticket's share of the dense gain at each level, and ticket -
    control, per cell, each with its interval and n; each :func:`share_change` row given, and
    each :func:`late_rise` row (has the dense network flattened?)."""
    out: dict[str, str] = {}
    for _, r in (changes if changes is not None else pd.DataFrame()).iterrows():
        out[f"share of the dense gain, {r['from']} -> {r['to']}, level {r['level']}"] = f"{r['change']} ({r['seeds']} seeds): {r['verdict']}"
    for _, r in (rise if rise is not None else pd.DataFrame()).iterrows():
        out[f"{r['cell']}: dense gain on the validation photos, step {r['from_step']} -> {r['to_step']}"] = (
            f"{r['mean']:+.2f} dB [{r['low']:+.2f}, {r['high']:+.2f}] ({r['seeds']} seeds): {r['verdict']}")
    for _, r in gains[gains["quantity"] == "share of dense gain"].iterrows():
        out[f"{r['cell']}, level {r['level']} ({100 * r['remaining_trainable']:.1f}% trainable): ticket's share of the dense gain"] = (
            f"{r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}] (n = {r['n']})" if np.isfinite(r["mean"]) else str(r["n"]))
    for _, r in differences.iterrows():
        out[f"{r['cell']}: ticket - {r['control']} (dB, levels {r['levels']})"] = (
            f"{r['mean']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] (df = {r['df']}, n = {r['n']}): {r['verdict']}"
            if r["verdict"] != TOO_FEW or r["df"] else f"{r['mean']:+.2f} (n = {r['n']}): {TOO_FEW}")
    return out


__all__ = ["CONTROLS", "cell_settings", "dense_curves", "difference_table", "gain_table", "headline", "late_rise", "planned_densities",
           "seed_gains", "seed_shares", "share_change"]
