"""Score a model on the test folders of the published layout; write results tables.

Example:
    >>> from mirl.models import build_model
    >>> res = evaluate_model(build_model("tiny"), "/tmp/ds", ["derain"], progress=False)  # doctest: +SKIP
    >>> res["convention"], res["test_crop"]                                               # doctest: +SKIP
    ('upstream', 'center_crop_16')
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from mirl import paths
from mirl.device import follow_threads
from mirl.errors import MirlError
from mirl.scoring.metrics import harm_warning


def check_limit(limit: int | None) -> None:
    """Refuse a negative image limit (``None`` and 0 mean every image, as the study's ``eval_limit``)."""
    if limit is not None and limit < 0:
        raise MirlError(f"--limit must be 0 (every image, as the study's eval_limit) or a positive number of images per task, got {limit}")


@dataclass(frozen=True)
class EvalSettings:
    """How test images are scored: the metric convention, centre crop or padding to
    ``crop_multiple``, tiling, images per task (``limit``: ``None`` or 0 = all; or ``select``, given
    a task's sorted image names, returns the indices to score), the test-noise seed, the inference
    precision, whether bad test files are skipped with a note, and the split scored (``test``, or
    ``val``: the validation images a recipe is chosen on).

    Example:
        >>> EvalSettings(convention="y", limit=4).test_crop
        'center_crop_16'
    """

    convention: str = "upstream"
    crop_multiple: int = 16
    pad: bool = False
    tile: int | None = None
    limit: int | None = None
    seed: int = 0
    precision: str = "fp32"
    skip_bad: bool = False
    select: Callable[[Sequence[str]], Sequence[int]] | None = None
    split: str = "test"

    @property
    def test_crop(self) -> str:
        """How test images are fitted to the network: ``center_crop_16`` or ``pad_16``."""
        return f"{'pad' if self.pad else 'center_crop'}_{self.crop_multiple}"


def evaluate_model(
    model: nn.Module,
    data_root: str | os.PathLike,
    tasks: Sequence[str] | str,
    settings: EvalSettings = EvalSettings(),
    device: str | torch.device = "auto",
    save_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Restore every test image of each task and average PSNR/SSIM per image.

    Returns ``{"convention", "test_crop", "seed", "tasks": {task: {"psnr", "ssim", "input_psnr",
    "input_ssim", "images", "per_image": [{"name", "psnr", "ssim", "input_psnr", "input_ssim"}]}}}``;
    ``input_*`` score the degraded input itself, the baseline that restoration must beat.
    ``save_dir`` writes restored PNGs (atomically) as ``save_dir/<task>/<name>.png``.

    Example:
        >>> res = evaluate_model(model, "datasets/builtin_test224", ["derain"], EvalSettings(limit=2), progress=False)  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from mirl.data import expand_tasks
    from mirl.data.datasets import TestDataset
    from mirl.data.imageio import to_uint8, write_image
    from mirl.device import resolve_device
    from mirl.scoring.metrics import CONVENTIONS, psnr, ssim
    from mirl.scoring.restore import restore_image

    convention = settings.convention
    if convention not in CONVENTIONS:
        raise MirlError(f"unknown metric convention {convention!r}; valid: {', '.join(CONVENTIONS)}")
    check_limit(settings.limit)
    dev = resolve_device(device)
    model = model.to(dev).eval()
    results: dict[str, Any] = {
        "convention": convention,
        "convention_description": CONVENTIONS[convention],
        "test_crop": settings.test_crop,
        "seed": settings.seed,
        "tile": settings.tile,
        "precision": settings.precision,
        "data_root": str(data_root),
        "split": settings.split,
        "tasks": {},
    }
    for task in expand_tasks(tasks):
        with warnings.catch_warnings():  # skipped files are listed in results and by format_table, not as raw warnings
            warnings.filterwarnings("ignore", message="skipping ", category=UserWarning)
            ds = TestDataset(data_root, task, crop_multiple=settings.crop_multiple, pad=settings.pad, seed=settings.seed,
                             skip_bad=settings.skip_bad, split=settings.split)
        n = min(settings.limit, len(ds)) if settings.limit else len(ds)
        chosen = list(range(n)) if settings.select is None else _selected(settings.select, [s.name for s in ds.samples])
        per_image = []
        for i in tqdm(chosen, desc=f"evaluate {task}", unit="img", disable=not progress):
            follow_threads()  # a local launcher may have given this job more or fewer cores
            item = ds[i]
            out = restore_image(model, item["degraded"][None], tile=settings.tile, precision=settings.precision)[0].cpu()
            _, _, h, w = item["crop"]
            out = out[:, :h, :w]  # undo test-time padding (no-op for centre-cropped images)
            degraded = item["degraded"][:, :h, :w]
            per_image.append({"name": item["name"], "psnr": psnr(out, item["clean"], convention), "ssim": ssim(out, item["clean"], convention),
                              "input_psnr": psnr(degraded, item["clean"], convention), "input_ssim": ssim(degraded, item["clean"], convention)})
            if save_dir is not None:
                write_image(Path(save_dir) / task / f"{item['name']}.png", to_uint8(out))
        results["tasks"][task] = _task_scores(per_image, [list(s) for s in ds.skipped])
    return results


def _task_scores(per_image: list[dict[str, Any]], skipped: list[list[str]]) -> dict[str, Any]:
    """One task's entry of :func:`evaluate_model`'s results, from its per-image scores."""
    mean, identical = mean_psnr([r["psnr"] for r in per_image])
    input_mean, input_identical = mean_psnr([r["input_psnr"] for r in per_image])
    return {
        "psnr": mean,
        "ssim": sum(r["ssim"] for r in per_image) / len(per_image),
        "input_psnr": input_mean,
        "input_ssim": sum(r["input_ssim"] for r in per_image) / len(per_image),
        "images": len(per_image),
        "psnr_identical": identical,
        "input_psnr_identical": input_identical,
        "skipped": skipped,
        "per_image": per_image,
    }


def subset_results(results: dict[str, Any], limit: int | None = None,
                   select: Callable[[Sequence[str]], Sequence[int]] | None = None) -> dict[str, Any]:
    """What :func:`evaluate_model` returns for fewer images (the first ``limit`` of each task, or
    those ``select`` picks), read from its ``results`` for every image of each task instead of
    restoring them again.

    Example:
        >>> rows = [{"name": n, "psnr": p, "ssim": 0.5, "input_psnr": 20.0, "input_ssim": 0.4} for n, p in (("a", 30.0), ("b", 32.0))]
        >>> full = {"convention": "upstream", "tasks": {"derain": {"per_image": rows, "skipped": []}}}
        >>> subset_results(full, select=lambda names: [names.index("b")])["tasks"]["derain"]["psnr"]
        32.0
    """
    tasks = {}
    for task, scores in results["tasks"].items():
        rows = scores["per_image"]
        chosen = _selected(select, [r["name"] for r in rows]) if select is not None else range(min(limit or len(rows), len(rows)))
        tasks[task] = _task_scores([rows[i] for i in chosen], scores["skipped"])
    return {**results, "tasks": tasks}


def _selected(select: Callable[[Sequence[str]], Sequence[int]], names: list[str]) -> list[int]:
    """The indices ``select`` picks from ``names``: distinct, in range, at least one, in order."""
    chosen = sorted({int(i) for i in select(names)})
    if not chosen or chosen[0] < 0 or chosen[-1] >= len(names):
        raise ValueError(f"an image selection must pick at least one of the {len(names)} test images, got {chosen}")
    return chosen


def mean_psnr(values: Sequence[float]) -> tuple[float, int]:
    """``(mean, identical)``: the mean PSNR over the images whose PSNR is finite, and how many
    images were left out because they equal their clean image (PSNR ``+inf``). The mean is
    ``+inf`` only when every image is identical. NaN is an error, never a score.

    The published code averages ``+inf`` in (one identical image makes the task's mean ``inf``);
    mirl reports the finite mean and the count instead (``psnr_identical`` in the results).

    Example:
        >>> mean_psnr([30.0, 40.0, float("inf")])
        (35.0, 1)
    """
    if any(math.isnan(v) for v in values):
        raise MirlError(f"PSNR is NaN for {sum(math.isnan(v) for v in values)} image(s): the restored images are not finite")
    finite = [v for v in values if math.isfinite(v)]
    return (sum(finite) / len(finite) if finite else float("inf")), len(values) - len(finite)


TABLE_COLUMNS = ("model", "task", "psnr", "input_psnr", "gain", "ssim", "images", "psnr_identical", "trained", "convention", "test_crop")
IDENTICAL_NOTE = ("{n} image(s) equal their clean image (PSNR +inf) and are left out of the PSNR means "
                  "(the published code averages +inf in); see psnr_identical")


def results_rows(results: dict[str, Any], model_name: str = "model") -> list[dict[str, Any]]:
    """Flatten :func:`evaluate_model` output into table rows (one per task, plus ``average``), each
    with the degraded input's PSNR and the gain over it (negative: the network made images worse).

    ``results["trained_tasks"]``, when set, marks the other tasks ``trained=False``: they are shown,
    and left out of the average.

    Example:
        >>> task = {"psnr": 30.0, "input_psnr": 28.0, "ssim": 0.9, "images": 4}
        >>> rows = results_rows({"convention": "upstream", "test_crop": "full", "trained_tasks": ["derain"],
        ...                      "tasks": {"derain": task, "jpeg": {**task, "psnr": 20.0}}})
        >>> [(r["task"], r["trained"], r["gain"]) for r in rows]
        [('derain', True, 2.0), ('jpeg', False, -8.0), ('average', True, 2.0)]
    """
    trained = results.get("trained_tasks")
    rows = []
    for task, r in results["tasks"].items():
        rows.append({"model": model_name, "task": task, "psnr": r["psnr"], "input_psnr": r["input_psnr"],
                     "gain": r["psnr"] - r["input_psnr"], "ssim": r["ssim"], "images": r["images"],
                     "psnr_identical": r.get("psnr_identical", 0), "trained": trained is None or task in trained,
                     "convention": results["convention"], "test_crop": results["test_crop"]})
    averaged = [r for r in rows if r["trained"]]
    if len(rows) > 1 and averaged:
        mean = lambda key: sum(r[key] for r in averaged) / len(averaged)  # noqa: E731
        rows.append({"model": model_name, "task": "average", "psnr": mean("psnr"), "input_psnr": mean("input_psnr"),
                     "gain": mean("gain"), "ssim": mean("ssim"), "images": sum(r["images"] for r in averaged),
                     "psnr_identical": sum(r["psnr_identical"] for r in averaged), "trained": True,
                     "convention": results["convention"], "test_crop": results["test_crop"]})
    return rows


def write_results_table(out_dir: str | os.PathLike, results_by_model: dict[str, dict[str, Any]], stem: str = "results") -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (one row per model and task, naming the convention) and ``<stem>.json``
    (everything, per-image scores included) atomically; return both paths."""
    from mirl.fileio import atomic_write_text

    out_dir = Path(out_dir)
    rows = [row for name, res in results_by_model.items() for row in results_rows(res, name)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{k: f"{row[k]:.4f}" for k in ("psnr", "input_psnr", "gain")}, "ssim": f"{row['ssim']:.6f}"})
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    conventions = sorted({res["convention"] for res in results_by_model.values()})
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps({"conventions": conventions, "models": results_by_model}, indent=1))
    return csv_path, json_path


def format_table(results_by_model: dict[str, dict[str, Any]]) -> str:
    """A plain-text table with a header line naming the convention(s) and test crop."""
    rows = [row for name, res in results_by_model.items() for row in results_rows(res, name)]
    if not rows:
        return "(no results)"
    splits = sorted({str(res.get("split", "test")) for res in results_by_model.values()})
    head = f"{'validation images (val) -- ' if splits == ['val'] else ''}metric convention: {', '.join(sorted({r['convention'] for r in rows}))}; test images: {', '.join(sorted({r['test_crop'] for r in rows}))}"
    width = max([len("model")] + [len(r["model"]) for r in rows])
    lines = [head, f"{'model':<{width}}  {'task':<11} {'PSNR':>8} {'input':>8} {'gain':>7} {'SSIM':>7} {'images':>6}"]
    for r in rows:
        lines.append(f"{r['model']:<{width}}  {r['task']:<11} {r['psnr']:8.2f} {r['input_psnr']:8.2f} {r['gain']:+7.2f} "
                     f"{r['ssim']:7.3f} {r['images']:6d}{'' if r['trained'] else '  not trained on; not in the average'}")
    for r in rows:
        if r["task"] != "average" and r["trained"] and r["gain"] < 0:
            lines.append("warning: " + harm_warning(f"{r['model']} {r['task']}", r["gain"]))
    identical = sum(r["psnr_identical"] for r in rows if r["task"] != "average")
    if identical:
        lines.append("note: " + IDENTICAL_NOTE.format(n=identical))
    skipped = sorted({tuple(s) for res in results_by_model.values() for t in res["tasks"].values() for s in t.get("skipped", [])})
    if skipped:
        lines.append(f"skipped {len(skipped)} bad file(s):")
        lines += [f"  {path}: {reason}" for path, reason in skipped]
    return "\n".join(lines)


def find_checkpoints(run_or_checkpoint: str | os.PathLike) -> list[tuple[str, Path]]:
    """``[(name, path)]``: a checkpoint file itself; a node folder's ``model.pt`` (a level of main
    or a branch); or each level's ``model.pt`` of main in a replicate folder (a study folder: its
    replicate 0), in level order. A level marked done without its ``model.pt`` is an error.

    Example:
        >>> find_checkpoints("runs/smoke_de4d1844")[0][0]   # doctest: +SKIP
        'level_0'
    """
    path = Path(run_or_checkpoint)
    if path.is_file():
        return [(path.stem if path.name != paths.model_file(".").name else path.parent.name, path)]
    if not path.is_dir():
        raise MirlError(f"{path}: no such study folder or checkpoint file")
    if paths.level_number(path) is not None and (path / paths.MAIN).is_dir():
        path = path / paths.MAIN
    node = paths.node_of(path)
    if node is not None or paths.model_file(path).is_file():
        if not paths.model_file(path).is_file():
            raise MirlError(f"{path}: no {paths.model_file(path).name} in this level folder yet; finish it with `mirl lottery`")
        name = path.parent.name if path.name == paths.MAIN else f"{path.parent.name}/{path.name}"
        return [(name, paths.model_file(path))]
    replicate = path if paths.replicate_number(path) is not None else paths.replicate_dir(path, 0)
    if paths.is_run_dir(path) and paths.old_layout(path) and not paths.replicate_numbers(path):
        raise MirlError(f"{path}: a study of an older mirl layout (flat level_<k> folders); give its level_<k>/model.pt "
                        "files, or recreate the study with `mirl lottery`")
    found = [paths.level_dir(replicate, k) for k in paths.level_numbers(replicate, finished_only=False)]
    for d in found:
        if paths.is_finished(d) and not paths.model_file(d).is_file():
            raise MirlError(f"{d}: the level is marked done but {paths.model_file(d).name} is missing; remove "
                            f"{paths.done_file(d)} and run the study again")
    found = [d for d in found if paths.model_file(d).is_file()]
    if not found:
        raise MirlError(f"{path}: no level_<k>/main/model.pt inside; pass a study folder (runs/<name>), a level folder or a checkpoint file")
    return [(d.parent.name, paths.model_file(d)) for d in found]


__all__ = ["EvalSettings", "check_limit", "evaluate_model", "find_checkpoints", "format_table", "mean_psnr", "results_rows", "subset_results",
           "write_results_table"]
