"""Evidence from studies: per-image scores across replicates, curves with 95% intervals, paired
differences ticket - control with verdicts, and the levels where a network harms its input.

A study variant (the ticket, or one control) is a list of chains, one per replicate: a chain is
a replicate folder (its ``main`` chain, the ticket) or ``(replicate folder, branch)``
(:func:`study_variants` lists a study's own). Intervals come from
:mod:`mirl.analysis.stats`. Every table says what it rests on: ``images`` (per task, or summed over tasks
for the ``mean`` row) and ``replicates``, and the interval ``method``.

Example:
    >>> scores = scores_table(study_variants("runs/quickstart_1a2b3c4d"))                  # doctest: +SKIP
    >>> curves = curve_table(scores, metric="gain")                                      # doctest: +SKIP
    >>> verdicts = verdict_table(paired_differences(scores, "ticket"))                   # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from mirl.errors import MirlError
from mirl.scoring.metrics import harm_warning
from mirl.paths import MAIN as MAIN_BRANCH
from mirl.analysis.stats import TOO_FEW, Interval, holm, interval, verdict, with_levels

MEAN = "mean"  # the row/panel that averages the tasks (each task weighs the same)
METRICS: dict[str, str] = {
    "psnr": "PSNR (dB)",
    "gain": "PSNR gain over the degraded input (dB)",
    "ssim": "SSIM",
}
UNITS: dict[str, str] = {"psnr": "dB", "gain": "dB", "ssim": ""}
SCORE_COLUMNS = ["label", "replicate", "seed", "run", "level", "remaining_prunable", "remaining_trainable", "task",
                 "name", "psnr", "ssim", "input_psnr", "input_ssim", "gain", "convention"]


def _chain(chain: object) -> tuple[str | os.PathLike, str]:
    return (chain[0], chain[1]) if isinstance(chain, tuple) else (chain, MAIN_BRANCH)  # type: ignore[index,return-value]


def study_variants(study: str | os.PathLike, branches: Sequence[str] | None = None, suffix: str = "") -> dict[str, list]:
    """``{label: [(replicate folder, branch), ...]}`` for the ticket and every control branch of a
    study (or only ``branches``, main first), one chain per replicate, labels with ``suffix``.

    Example:
        >>> study_variants("runs/smoke_de4d1844")      # doctest: +SKIP
        {'ticket': [(.../replicate_0, 'main'), ...], 'random re-init': [(.../replicate_0, 'random_reinit'), ...]}
    """
    from mirl import paths
    from mirl.branches import branch_label, get_branch
    from mirl.analysis.results import branches_of, study_dir

    root = study_dir(study)
    found = branches_of(root)
    wanted = [MAIN_BRANCH, *(b for b in (branches if branches is not None else found)
                             if b != MAIN_BRANCH and b in found and get_branch(b).is_control)]
    replicates = [paths.replicate_dir(root, r) for r in paths.replicate_numbers(root)]
    return {branch_label(b) + suffix: [(rep, b) for rep in replicates] for b in wanted}


def scores_table(variants: Mapping[str, Sequence[object]]) -> pd.DataFrame:
    """Per-image scores of every finished level of every replicate of every variant.

    ``variants`` maps a label (``"ticket"``, ``"random re-init"``) to its chains, one per
    replicate (:func:`study_variants`). ``gain`` is the PSNR over the degraded input's PSNR (> 0: the network restores).
    Images whose PSNR is infinite (identical to the clean image) are left out, as in the means.
    """
    from mirl import paths
    from mirl.analysis.results import chain_node, check_distinct_replicates, levels, load_config, load_metrics, task_scores

    rows = []
    for label, chains in variants.items():
        by_level: dict[int, list] = {}
        for replicate, chain in enumerate(chains):
            run_dir, branch = _chain(chain)
            seed = load_config(run_dir).get("seed")
            for level in levels(run_dir, branch=branch):
                metrics = load_metrics(run_dir, level, branch)
                node = chain_node(run_dir, level, branch)
                by_level.setdefault(level, []).append((node, metrics))
                for task, scores in task_scores(metrics, paths.metrics_file(node)).items():
                    for item in scores.get("per_image", []):
                        if "input_psnr" not in item:
                            raise MirlError(f"{run_dir} level {level}: metrics.json has no per-image input_psnr (an older "
                                            "mirl wrote it); re-run the study in a new --out folder to score against the input")
                        psnr, input_psnr = float(item["psnr"]), float(item["input_psnr"])
                        if not (np.isfinite(psnr) and np.isfinite(input_psnr)):
                            continue
                        rows.append({
                            "label": label, "replicate": replicate, "seed": seed, "run": f"{os.path.basename(os.path.dirname(os.path.abspath(run_dir)))}/{os.path.basename(os.fspath(run_dir))}/{branch}",
                            "level": level, "remaining_prunable": float(metrics["density_prunable"]),
                            "remaining_trainable": float(metrics["density_trainable"]), "task": task, "name": item["name"],
                            "psnr": psnr, "ssim": float(item["ssim"]), "input_psnr": input_psnr,
                            "input_ssim": float(item["input_ssim"]), "gain": psnr - input_psnr,
                            "convention": metrics.get("convention", "unknown"),
                        })
        for records in by_level.values():
            check_distinct_replicates(records)
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _complete_levels(scores: pd.DataFrame) -> pd.DataFrame:
    """Only the levels that every replicate of a variant has finished (so every point has one n)."""
    parts = []
    for _, group in scores.groupby("label", sort=False):
        replicates = group["replicate"].nunique()
        complete = group.groupby("level")["replicate"].nunique()
        parts.append(group[group["level"].isin(complete[complete == replicates].index)])
    return pd.concat(parts) if parts else scores


def _values(group: pd.DataFrame, column: str, tasks: Sequence[str]) -> list[list[np.ndarray]]:
    """``[replicate][task] -> per-image values`` (sorted by image name) for :func:`mirl.analysis.stats.interval`."""
    return [[rep[rep["task"] == t].sort_values("name")[column].to_numpy() for t in tasks]
            for _, rep in group.groupby("replicate", sort=True)]


def _tasks(scores: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(scores["task"]))


def _groups(scores: pd.DataFrame) -> Iterator[tuple[str, int, pd.DataFrame]]:
    for (label, level), group in _complete_levels(scores).groupby(["label", "level"], sort=False):
        yield str(label), int(level), group


def _row(iv: Interval, **keys) -> dict:
    return {**keys, "mean": iv.mean, "low": iv.low, "high": iv.high, "images": iv.images,
            "replicates": iv.replicates, "method": iv.method}


def curve_table(scores: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Mean and 95% interval of ``metric`` (``psnr``, ``gain`` or ``ssim``) per variant, level and
    task, plus a ``mean`` row over the tasks.

    Example:
        >>> curve_table(scores, "gain").query("task == 'mean'")[["label", "level", "mean", "low", "high"]]  # doctest: +SKIP
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    tasks = _tasks(scores)
    rows = []
    for label, level, group in _groups(scores):
        where = {"label": label, "level": level, "remaining_prunable": group["remaining_prunable"].iloc[0],
                 "remaining_trainable": group["remaining_trainable"].iloc[0]}
        for task in tasks:
            rows.append(_row(interval(_values(group, metric, [task])), **where, task=task))
        rows.append(_row(interval(_values(group, metric, tasks)), **where, task=MEAN))
    columns = ["label", "level", "remaining_prunable", "remaining_trainable", "task", "mean", "low", "high", "images",
               "replicates", "method"]
    return pd.DataFrame(rows, columns=columns).assign(metric=metric)


def _paired(scores: pd.DataFrame, ticket: str, metric: str) -> Iterator[tuple[str, pd.DataFrame]]:
    """``(control, per-image differences ticket - control at the pruned levels)`` per other variant,
    paired on the same seeds and test images (level 0 is left out: it is shared by one seed's variants).
    A seed that only one of them has at a level has no pair there and is left out: the differences'
    seed count says how many were paired (a branch added to a study after some seeds finished)."""
    mine = scores[scores["label"] == ticket]
    for control in [v for v in dict.fromkeys(scores["label"]) if v != ticket]:
        theirs = scores[scores["label"] == control]
        keys = ["seed", "level", "task", "name"]
        _check_same_images(mine, theirs, ticket, control)
        both = mine.merge(theirs[keys + [metric]], on=keys, suffixes=("", "_control"))
        yield control, both[both["level"] > 0].assign(difference=lambda t: t[metric] - t[f"{metric}_control"])


def paired_differences(scores: pd.DataFrame, ticket: str, metric: str = "psnr") -> pd.DataFrame:
    """``ticket - control`` per pruned level, task (and ``mean``) for every other variant, paired
    on the same replicate seeds and test images; with its 95% interval, df, p and verdict.

    These are the **secondary** rows of the analysis plan (``docs/lottery.md``): ``p_holm`` is
    Holm-adjusted over all rows of one control (every level, every task and the mean), and the
    verdict follows it; with fewer than 2 seeds or 2 images per task it is "too few to tell".
    Level 0 is left out: the dense level is shared by the variants of one seed.
    """
    scores = _complete_levels(scores)
    tasks = _tasks(scores)
    rows = []
    for control, both in _paired(scores, ticket, metric):
        family = []
        for level, group in both.groupby("level"):
            where = {"ticket": ticket, "control": control, "level": int(level), "remaining_prunable": group["remaining_prunable"].iloc[0],
                     "remaining_trainable": group["remaining_trainable"].iloc[0]}
            for task in [*tasks, MEAN]:
                iv = interval(_values(group, "difference", tasks if task == MEAN else [task]))
                family.append((iv, {**_row(iv, **where, task=task), "df": iv.df, "task_images": iv.task_images, "p": iv.p}))
        adjusted = holm([iv.p for iv, _ in family])
        rows += [{**row, "p_holm": p, "verdict": verdict(iv, p)} for (iv, row), p in zip(family, adjusted)]
    columns = ["ticket", "control", "level", "remaining_prunable", "remaining_trainable", "task", "mean", "low", "high", "images",
               "replicates", "method", "df", "task_images", "p", "p_holm", "verdict"]
    return pd.DataFrame(rows, columns=columns).assign(metric=metric)


def primary_endpoints(scores: pd.DataFrame, ticket: str, metric: str = "psnr") -> pd.DataFrame:
    """The **primary endpoint** of each control, named before the run (``docs/lottery.md``,
    "Analysis plan"): for each seed, the paired difference ``ticket - control`` averaged over the
    test images of each task, the tasks, and every pruned level both finished; then a 95%
    t-interval across seeds with ``seeds - 1`` degrees of freedom, its two-sided p and verdict
    ("too few to tell" with fewer than 2 seeds or 2 images per task).

    Example:
        >>> primary_endpoints(scores, "ticket")[["control", "mean", "low", "high", "df", "seeds", "verdict"]]  # doctest: +SKIP
    """
    scores = _complete_levels(scores)
    tasks = _tasks(scores)
    rows = []
    for control, both in _paired(scores, ticket, metric):
        levels = sorted(int(v) for v in both["level"].unique())
        if not levels:
            continue
        paired_everywhere = set.intersection(*(set(both.loc[both["level"] == level, "seed"]) for level in levels))
        both = both[both["seed"].isin(paired_everywhere)]  # each seed's endpoint spans the same levels
        per_level = [_values(both[both["level"] == level], "difference", tasks) for level in levels]
        values = [[t for level in per_level for t in level[r]] for r in range(len(per_level[0]))]  # [seed][level x task]
        iv = interval(values)
        iv = with_levels(iv, len(levels), iv.images // len(levels))
        unit = UNITS.get(metric, "")
        low, high = (iv.low, iv.high) if iv.df else (math.nan, math.nan)  # one seed: no interval across seeds
        rows.append({"control": control, "levels": ", ".join(map(str, levels)), "mean": iv.mean, "low": low, "high": high,
                     "df": iv.df, "seeds": iv.replicates, "images": iv.images, "task_images": iv.task_images, "p": iv.p,
                     "method": iv.method, "n": iv.sample_size, "verdict": verdict(iv),
                     "sentence": f"{ticket} - {control}, mean over pruned level{'s' if len(levels) > 1 else ''} "
                                 f"{', '.join(map(str, levels))}: "
                                 f"{iv.format(unit, signed=True) + ', t-interval, df = ' + str(iv.df) if iv.df else f'{iv.mean:+.2f} {unit}, no interval (1 seed)'}, "
                                 f"n = {iv.sample_size}: {verdict(iv)}"})
    return pd.DataFrame(rows, columns=["control", "levels", "mean", "low", "high", "df", "seeds", "images", "task_images", "p",
                                       "method", "n", "verdict", "sentence"]).assign(metric=metric)


def paired_differences_by_study(scores: pd.DataFrame, variants: Mapping[str, Mapping[str, object]],
                                metric: str = "psnr") -> pd.DataFrame:
    """:func:`paired_differences` of every control against the ticket of its own study, for
    several studies at once (``variants``: ``{suffix: study_variants(study, suffix=suffix)}``, the
    first the reference study), plus each other study's ticket against the reference ticket (e.g.
    reset to theta_0 - rewinding), all paired on seeds and test images.
    """
    parts = []
    suffixes = list(variants)
    for suffix in suffixes:
        labels = list(variants[suffix])
        if len(labels) > 1:
            parts.append(paired_differences(scores[scores["label"].isin(labels)], "ticket" + suffix, metric))
    for suffix in suffixes[1:]:
        tickets = ["ticket" + suffixes[0], "ticket" + suffix]
        parts.append(paired_differences(scores[scores["label"].isin(tickets)], tickets[0], metric))
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else paired_differences(scores.iloc[0:0], "ticket", metric)


def _check_same_images(mine: pd.DataFrame, theirs: pd.DataFrame, ticket: str, control: str) -> None:
    """Refuse to pair variants scored on different test images for a seed and level both finished."""
    for level in sorted(set(mine["level"]) & set(theirs["level"]) - {0}):
        at_mine, at_theirs = mine[mine["level"] == level], theirs[theirs["level"] == level]
        seeds = set(at_mine["seed"]) & set(at_theirs["seed"])
        a = set(at_mine.loc[at_mine["seed"].isin(seeds), ["seed", "task", "name"]].itertuples(index=False))
        b = set(at_theirs.loc[at_theirs["seed"].isin(seeds), ["seed", "task", "name"]].itertuples(index=False))
        if a != b:
            raise MirlError(
                f"level {level}: {ticket!r} and {control!r} were scored on different test images "
                f"({len(a & b)} in common, {len(a - b)} only in {ticket!r}, {len(b - a)} only in {control!r}: "
                f"e.g. {sorted(a ^ b)[0]}); a paired difference needs the same seeds and images. Run both with the same "
                "replicates on one dataset (a rebuilt dataset needs new runs, e.g. another --out)")


def verdict_table(differences: pd.DataFrame, ticket: str = "ticket", denominator: str = "trainable") -> pd.DataFrame:
    """One sentence per control and level from the ``mean`` rows of :func:`paired_differences` (the
    secondary rows, Holm-adjusted), e.g. "at 19.5% trainable the ticket is +0.40 dB [+0.10, +0.70]
    above random re-init: resolved (Holm-adjusted p = 0.012)". Each row names the ticket it was
    paired with (a compared study's controls against that study's ticket); ``ticket`` names it for
    differences that do not record one.
    """
    rows = []
    for row in differences[differences["task"] == MEAN].itertuples():
        mine = getattr(row, "ticket", None) or ticket
        iv = Interval(row.mean, row.low, row.high, row.images, row.replicates, row.method)
        side = "above" if row.mean >= 0 else "below"
        unit = UNITS.get(str(row.metric), "")
        density = 100 * getattr(row, f"remaining_{denominator}")
        holm_p = "" if row.verdict == TOO_FEW or not np.isfinite(row.p_holm) else f" (Holm-adjusted p = {row.p_holm:.3g})"
        rows.append({
            "ticket": mine, "control": row.control, "level": row.level, f"remaining {denominator} (%)": round(density, 2),
            "ticket - control": iv.format(unit, signed=True), "n": iv.sample_size,
            "Holm-adjusted p": round(float(row.p_holm), 4) if np.isfinite(row.p_holm) else None, "verdict": row.verdict,
            "sentence": f"at {density:.3g}% {denominator} the {mine} is {iv.format(unit, signed=True)} {side} "
                        f"{row.control}: {row.verdict}{holm_p}",
        })
    return pd.DataFrame(rows, columns=["ticket", "control", "level", f"remaining {denominator} (%)", "ticket - control", "n",
                                       "Holm-adjusted p", "verdict", "sentence"])


def primary_lines(scores: pd.DataFrame, ticket: str = "ticket", metric: str = "psnr") -> list[str]:
    """The primary endpoint of every control as printed lines (``mirl lottery``'s summary); none
    when the study has no control.

    Example:
        >>> primary_lines(scores)  # doctest: +SKIP
        ['ticket - random re-init, mean over pruned levels 1, 2: +0.39 dB [+0.10, +0.68], t-interval, df = 2, n = 3 seeds (...): resolved']
    """
    if scores.empty or scores["label"].nunique() < 2:
        return []
    return list(primary_endpoints(scores, ticket, metric)["sentence"])


def wide_table(curves: pd.DataFrame, denominator: str = "trainable", digits: int = 2) -> pd.DataFrame:
    """One row per variant and level, one column per task: ``"mean [low, high]"`` strings, with the
    remaining weights and the n of the ``mean`` column (for reports; the numbers stay in ``curves``)."""
    unit_fmt = f"{{:.{digits if curves['metric'].iloc[0] != 'ssim' else 4}f}}"

    def cell(r: pd.Series) -> str:
        if r["replicates"] < 2 and r["images"] < 2 * (len(tasks) if r["task"] == MEAN else 1):  # nothing estimates a spread
            return f"{unit_fmt.format(r['mean'])} (no interval)"
        return f"{unit_fmt.format(r['mean'])} [{unit_fmt.format(r['low'])}, {unit_fmt.format(r['high'])}]"

    tasks = [t for t in dict.fromkeys(curves["task"]) if t != MEAN]

    table = curves.assign(cell=curves.apply(cell, axis=1))
    wide = table.pivot(index=["label", "level"], columns="task", values="cell")
    wide = wide[[t for t in dict.fromkeys(curves["task"]) if t in wide.columns]]
    means = table[table["task"] == MEAN].set_index(["label", "level"])
    wide.insert(0, f"remaining {denominator} (%)", (100 * means[f"remaining_{denominator}"]).round(2))
    wide["n (mean)"] = [f"{i} img x {r} rep" for i, r in zip(means["images"], means["replicates"])]
    order = {label: i for i, label in enumerate(dict.fromkeys(curves["label"]))}
    return wide.reset_index().sort_values(["label", "level"], key=lambda c: c.map(order) if c.name == "label" else c,
                                          ignore_index=True)


def headline(scores: pd.DataFrame, reference: str, metric: str = "gain") -> dict[str, str]:
    """The numbers for the report index: the reference variant's dense and last-level means over
    tasks with their interval and n, each variant's last level, each control's primary endpoint
    (:func:`primary_endpoints`), and the last level's Holm-adjusted verdicts.

    Example:
        >>> headline(scores, "ticket")  # doctest: +SKIP
        {'ticket: dense, mean PSNR gain (dB)': '+3.10 [+2.90, +3.30] (n = 1 seed (the mean over 80 test images))', ...}
    """
    curves = curve_table(scores, metric)
    means = curves[curves["task"] == MEAN]
    convention = conventions(scores)
    name = f"{METRICS[metric].replace(' (dB)', '')} (dB, {convention})" if UNITS[metric] else METRICS[metric]
    out: dict[str, str] = {}

    def put(key: str, row: pd.Series) -> None:
        per_task = curves[(curves["label"] == row["label"]) & (curves["level"] == row["level"]) & (curves["task"] != MEAN)]
        iv = Interval(row["mean"], row["low"], row["high"], int(row["images"]), int(row["replicates"]), row["method"],
                      task_images=int(per_task["images"].min()) if not per_task.empty else None)
        out[key] = f"{iv.format('', signed=metric == 'gain')} (n = {iv.sample_size})"

    dense = means[(means["label"] == reference) & (means["level"] == 0)]
    if not dense.empty:
        put(f"{reference}, dense: mean {name}", dense.iloc[0])
    for label, group in means.groupby("label", sort=False):
        last = group.sort_values("level").iloc[-1]
        put(f"{label}, level {int(last['level'])} ({100 * last['remaining_trainable']:.3g}% trainable): mean {name}", last)
    if scores["label"].nunique() > 1:
        for row in primary_endpoints(scores, reference).itertuples():
            out[f"{reference} - {row.control}: primary endpoint (PSNR, dB, mean over pruned levels)"] = row.sentence
        table = verdict_table(paired_differences(scores, reference), ticket=reference)
        for control, group in table.groupby("control", sort=False):
            out[f"{reference} - {control}, last level (secondary, Holm-adjusted)"] = group.iloc[-1]["sentence"]
    return out


def conventions(scores: pd.DataFrame) -> str:
    """The metric conventions of a scores table, sorted and comma-separated (one in a sound study).

    Example:
        >>> conventions(pd.DataFrame({"convention": ["upstream", "upstream"]}))
        'upstream'
    """
    return ", ".join(sorted(set(scores["convention"])))


def interval_method(table: pd.DataFrame) -> str:
    """The interval method a curve or difference table rests on (for captions); ``""`` when empty.

    Example:
        >>> interval_method(pd.DataFrame({"method": ["t over images", "t over images"]}))
        't over images'
        >>> interval_method(pd.DataFrame(columns=["method"]))
        ''
    """
    return str(table["method"].iloc[0]) if len(table) else ""


def compute_seconds(studies: Sequence[str | os.PathLike]) -> float:
    """Wall time (s, one decimal) that the finished nodes of ``studies`` took (each study once).

    Example:
        >>> compute_seconds([])
        0.0
    """
    from mirl.analysis.results import study_dir, study_seconds

    return round(float(sum(study_seconds(s) for s in dict.fromkeys(study_dir(s) for s in studies))), 1)


def barrier_table(studies: Mapping[str, str | os.PathLike], denominator: str = "trainable") -> pd.DataFrame:
    """The stability barrier (dB, :mod:`mirl.branches.stability`) of each study at each level: the
    mean over replicates with its 95% t-interval across them and its n (seeds, each the mean over
    the path's images); beside it the gain over the degraded input at the path's ends (mean of
    alpha = 0 and 1) and the distance ratio ||theta_A - theta_B|| / ||theta_A - theta_start||, each
    with its interval across seeds, and the test crops per photo the path was scored on.

    ``studies`` maps a label (e.g. ``"reset to theta_0"``, ``"rewind to step 40"``) to a study
    folder. Only levels whose stability branch every replicate finished are shown.
    """
    from mirl import paths
    from mirl.analysis.results import chain_node, check_distinct_replicates, load_metrics, study_dir
    from mirl.analysis.stats import replicate_interval

    rows = []
    for label, study in studies.items():
        root = study_dir(study)
        replicates = [paths.replicate_dir(root, r) for r in paths.replicate_numbers(root)]
        done = [set(paths.level_numbers(rep, branch="stability")) for rep in replicates]
        for level in sorted(set.intersection(*done) if done else set()):
            found = [load_metrics(rep, level, "stability") for rep in replicates]
            nodes = [chain_node(rep, level, "stability") for rep in replicates]
            for node, metrics in zip(nodes, found):
                _check_barrier(node, metrics, denominator)
            check_distinct_replicates(zip(nodes, found))
            images = int(found[0]["path"][0]["images"])
            iv = replicate_interval([m["barrier"] for m in found], images=images)
            gain = replicate_interval([m["gain_ends"] for m in found], images=images)
            ratios = [m["distance"]["ratio"] for m in found]
            ratio = replicate_interval(ratios, images=images).format("", digits=3) if None not in ratios else "n/a"
            rows.append({"label": label, "level": level,
                         f"remaining {denominator} (%)": round(100 * float(found[0][f"density_{denominator}"]), 2),
                         "mean": iv.mean, "low": iv.low, "high": iv.high, "barrier (dB)": iv.format("", signed=True),
                         "gain over the input at the ends (dB)": gain.format("", signed=True),
                         "|A - B| / |A - start|": ratio, "crops per photo": _per_photo(found[0]["path_images_per_photo"]),
                         "n": iv.sample_size, "method": iv.method,
                         "alphas": ", ".join(f"{a:g}" for a in found[0]["alphas"])})
    return pd.DataFrame(rows, columns=["label", "level", f"remaining {denominator} (%)", "mean", "low", "high",
                                       "barrier (dB)", "gain over the input at the ends (dB)", "|A - B| / |A - start|",
                                       "crops per photo", "n", "method", "alphas"])


def _per_photo(per_task: Mapping[str, Mapping[str, int] | None]) -> str:
    """``"2 from each of 4 photos"`` (or ``"every image"``) from a stability node's ``path_images_per_photo``."""
    counts = list(per_task.values())
    if any(c is None for c in counts):
        return "every image (no photo names)"
    per_photo = sorted({n for c in counts for n in c.values()})  # type: ignore[union-attr]
    photos = sorted({p for c in counts for p in c})  # type: ignore[union-attr]
    return f"{'/'.join(map(str, per_photo))} from each of {len(photos)} photos"


def _check_barrier(node: os.PathLike, metrics: Mapping[str, object], denominator: str) -> None:
    """Refuse a finished stability node whose metrics lack the barrier, its linear path, alphas, the
    gain at the ends, the distance ratio or the images per photo (an older mirl's path)."""
    from mirl import paths

    path, dist = metrics.get("path"), metrics.get("distance")
    if (not isinstance(metrics.get("barrier"), (int, float)) or not isinstance(path, list) or not path
            or not isinstance(path[0], dict) or not isinstance(path[0].get("images"), int)
            or not isinstance(metrics.get("alphas"), list) or not isinstance(metrics.get(f"density_{denominator}"), (int, float))):
        raise MirlError(f"{paths.metrics_file(node)} lacks the stability barrier or its linear path ('barrier', 'path', "
                        f"'alphas'); remove {paths.done_file(node)} and run the study again to redo that stability node")
    if (not isinstance(metrics.get("gain_ends"), (int, float)) or not isinstance(dist, dict) or "ratio" not in dist
            or not isinstance(metrics.get("path_images_per_photo"), dict)):
        raise MirlError(f"{paths.metrics_file(node)} was scored by an older mirl (no 'gain_ends', 'distance' or "
                        f"'path_images_per_photo': its path saw only the first test images by name); remove "
                        f"{paths.done_file(node)} and run the study again to redo that stability node")


def barrier_headline(barriers: pd.DataFrame, denominator: str = "trainable") -> dict[str, str]:
    """The stability barrier of each study (reset, rewinding, ...) at its dense and its last level,
    with interval and n, beside the gain over the input and the distance ratio, for the report index
    (a :func:`barrier_table`).

    Example:
        >>> table = pd.DataFrame({"label": ["this study"] * 2, "level": [0, 2], "remaining trainable (%)": [100.0, 14.2],
        ...                       "barrier (dB)": ["+0.76 [+0.41, +1.11]", "+0.03 [-0.10, +0.16]"], "n": ["3 seeds (each the mean over 8 test images)"] * 2,
        ...                       "gain over the input at the ends (dB)": ["+3.10 [+2.90, +3.30]", "+2.50 [+2.20, +2.80]"],
        ...                       "|A - B| / |A - start|": ["0.812 [0.700, 0.924]", "0.650 [0.600, 0.700]"]})
        >>> barrier_headline(table)["this study: stability barrier, level 2 (14.2% trainable) (dB)"]
        '+0.03 [-0.10, +0.16] beside a gain over the input of +2.50 [+2.20, +2.80] at the ends; |A - B| / |A - start| 0.650 [0.600, 0.700] (n = 3 seeds (each the mean over 8 test images))'
    """
    out: dict[str, str] = {}
    for label, group in barriers.groupby("label", sort=False):
        group = group.sort_values("level")
        for _, row in (group.iloc[[0, -1]] if len(group) > 1 else group).iterrows():
            remaining = row[f"remaining {denominator} (%)"]
            where = "dense" if row["level"] == 0 else f"level {int(row['level'])} ({remaining:.3g}% {denominator})"
            out[f"{label}: stability barrier, {where} (dB)"] = (
                f"{row['barrier (dB)']} beside a gain over the input of {row['gain over the input at the ends (dB)']} at the ends; "
                f"|A - B| / |A - start| {row['|A - B| / |A - start|']} (n = {row['n']})")
    return out


def harmful_levels(scores: pd.DataFrame) -> pd.DataFrame:
    """Variant, level and task where the restored images score below the degraded input on
    average (mean PSNR gain < 0): each is a failure to look into, not a data point."""
    curves = curve_table(scores, "gain")
    bad = curves[(curves["task"] != MEAN) & (curves["mean"] < 0)]
    return bad[["label", "level", "remaining_trainable", "task", "mean", "low", "high", "images", "replicates"]].reset_index(drop=True)


def harm_warnings(scores: pd.DataFrame) -> list[str]:
    """One line per entry of :func:`harmful_levels`, for reports and the CLI."""
    lines = []
    for r in harmful_levels(scores).itertuples():
        n = Interval(r.mean, r.low, r.high, r.images, r.replicates, "").sample_size
        lines.append(harm_warning(f"{r.label}, level {r.level} ({100 * r.remaining_trainable:.3g}% trainable), {r.task}", r.mean,
                                  f"[{r.low:+.2f}, {r.high:+.2f}] (n = {n})"))
    return lines


__all__ = ["MEAN", "METRICS", "barrier_headline", "barrier_table", "compute_seconds", "conventions", "curve_table", "harm_warnings",
           "harmful_levels", "headline", "interval_method", "paired_differences", "paired_differences_by_study", "primary_endpoints",
           "primary_lines", "scores_table", "study_variants",
           "verdict_table", "wide_table"]
