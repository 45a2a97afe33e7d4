"""Read study run directories (written by :mod:`mirl.lottery`) into pandas tables.

A run directory looks like::

    runs/<name>_<hash8>/config.json
    runs/<name>_<hash8>/level_<k>/{model.pt, mask.pt, sparsity_report.json, metrics.json, done.json}

Every table of scores carries a ``convention`` column (the metric convention of
:mod:`mirl.metrics`, e.g. ``upstream``: RGB, [0, 1], no border crop): numbers under different
conventions are not comparable.

Example:
    >>> from mirl.results import list_runs, metrics_table                # doctest: +SKIP
    >>> runs = list_runs("runs")                                        # doctest: +SKIP
    >>> metrics_table(runs.path[0])[["level", "task", "psnr", "input_psnr"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pandas as pd

from mirl.paths import level_dir

PathLike = str | os.PathLike

_LEVEL_RE = re.compile(r"^level_(\d+)$")

# Keys of config.json that are bookkeeping rather than settings.
_BOOKKEEPING = {"name", "hash", "non_default"}


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_config(run_dir: PathLike) -> dict[str, Any]:
    """The resolved study configuration of a run (``config.json``).

    Example:
        >>> load_config("runs/quickstart_1a2b3c4d")["name"]   # doctest: +SKIP
        'quickstart'
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: no config.json")
    return _read_json(path)


def levels(run_dir: PathLike, finished_only: bool = True) -> list[int]:
    """Level numbers present in ``run_dir``, ascending; by default only finished ones (``done.json``).

    Example:
        >>> levels("runs/quickstart_1a2b3c4d")   # doctest: +SKIP
        [0, 1, 2, 3]
    """
    found = []
    for child in Path(run_dir).iterdir():
        match = _LEVEL_RE.match(child.name)
        if match and child.is_dir():
            if finished_only and not (child / "done.json").is_file():
                continue
            found.append(int(match.group(1)))
    return sorted(found)


def _flatten(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def run_label(run_dir_or_config: PathLike | Mapping[str, Any]) -> str:
    """A short human label for a run: its preset plus the settings that differ from the preset.

    Example:
        >>> run_label({"preset": "smoke", "name": "smoke_1a2b3c4d", "scope": "layerwise"})
        'smoke (scope=layerwise)'
    """
    config = run_dir_or_config if isinstance(run_dir_or_config, Mapping) else load_config(run_dir_or_config)
    preset = config.get("preset")
    changed: dict[str, Any] = {}
    if preset is not None:
        try:
            from mirl.config import NOT_HASHED, study_preset

            base = study_preset(str(preset)).to_dict()
            changed = {k: v for k, v in config.items()
                       if k in base and k not in NOT_HASHED and _flatten(v) != _flatten(base[k])}
        except Exception:  # unknown preset (an older run): fall back to the recorded non-defaults
            changed = dict(config.get("non_default") or {})
    else:
        changed = dict(config.get("non_default") or {})
    name = str(preset or config.get("name", "run"))
    if changed:
        parts = [f"{key}={_flatten(val)}" for key, val in sorted(changed.items())]
        return f"{name} ({', '.join(parts)})"
    return name


def find_setting(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """Look ``key`` up in a (possibly nested) configuration: top level first, then sections.

    Example:
        >>> find_setting({"prune": {"scope": "global"}}, "scope")
        'global'
    """
    if key in config:
        return config[key]
    for value in config.values():
        if isinstance(value, Mapping):
            found = find_setting(value, key, None)
            if found is not None:
                return found
    return default


def uses_builtin_corpus(run_dir_or_config: PathLike | Mapping[str, Any]) -> bool:
    """Whether a run trained and tested on the built-in demo corpus (not a benchmark)."""
    config = run_dir_or_config if isinstance(run_dir_or_config, Mapping) else load_config(run_dir_or_config)
    for key in ("corpus", "dataset", "data_root", "data", "source"):
        value = find_setting(config, key)
        if isinstance(value, str) and ("builtin" in value.lower() or "built-in" in value.lower() or "demo" in value.lower()):
            return True
        if isinstance(value, Mapping):
            text = json.dumps(value).lower()
            if "builtin" in text or "built-in" in text:
                return True
    return False


def list_runs(root: PathLike = "runs") -> pd.DataFrame:
    """One row per run directory under ``root``: name, hash, label, finished levels, path.

    Example:
        >>> list_runs("runs")[["label", "levels"]]   # doctest: +SKIP
    """
    rows = []
    root = Path(root)
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if not (child / "config.json").is_file():
                continue
            config = load_config(child)
            done = levels(child)
            rows.append({
                "name": config.get("name", child.name),
                "hash": config.get("hash", ""),
                "label": run_label(config),
                "levels": done,
                "last_level": done[-1] if done else None,
                "path": str(child),
            })
    return pd.DataFrame(rows, columns=["name", "hash", "label", "levels", "last_level", "path"])


def load_metrics(run_dir: PathLike, level: int) -> dict[str, Any]:
    """The ``metrics.json`` of one level."""
    return _read_json(level_dir(run_dir, level) / "metrics.json")


def load_sparsity(run_dir: PathLike, level: int) -> dict[str, Any]:
    """The ``sparsity_report.json`` of one level."""
    return _read_json(level_dir(run_dir, level) / "sparsity_report.json")


def _level_files(run_dir: PathLike, filename: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(level, parsed JSON)`` of ``filename`` in every finished level that has it."""
    for level in levels(run_dir):
        path = level_dir(run_dir, level) / filename
        if path.is_file():
            yield level, _read_json(path)


def metrics_table(run_dir: PathLike, label: str | None = None) -> pd.DataFrame:
    """Long table of scores: one row per (level, task) with both densities and the convention.

    Columns: run, label, level, remaining_prunable, remaining_trainable (fractions in [0, 1]),
    task, psnr, ssim, input_psnr, input_ssim (the degraded input's own scores), images, convention.

    Example:
        >>> t = metrics_table("runs/smoke_1a2b3c4d")       # doctest: +SKIP
        >>> t.pivot(index="level", columns="task", values="psnr")   # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    label = label or run_label(run_dir)
    rows = []
    for level, metrics in _level_files(run_dir, "metrics.json"):
        for task, scores in (metrics.get("tasks") or {}).items():
            rows.append({
                "run": run_dir.name,
                "label": label,
                "level": level,
                "remaining_prunable": float(metrics.get("density_prunable", float("nan"))),
                "remaining_trainable": float(metrics.get("density_trainable", float("nan"))),
                "task": task,
                "psnr": float(scores.get("psnr", float("nan"))),
                "ssim": float(scores.get("ssim", float("nan"))),
                "input_psnr": float(scores.get("input_psnr", float("nan"))),
                "input_ssim": float(scores.get("input_ssim", float("nan"))),
                "images": int(scores.get("images", len(scores.get("per_image", [])))),
                "convention": metrics.get("convention", "unknown"),
            })
    columns = ["run", "label", "level", "remaining_prunable", "remaining_trainable", "task", "psnr", "ssim",
               "input_psnr", "input_ssim", "images", "convention"]
    return pd.DataFrame(rows, columns=columns)


def per_image_table(run_dir: PathLike, level: int) -> pd.DataFrame:
    """Per-image PSNR/SSIM of one level: columns task, name, psnr, ssim, convention."""
    metrics = load_metrics(run_dir, level)
    rows = [
        {"task": task, "name": item.get("name"), "psnr": item.get("psnr"), "ssim": item.get("ssim"),
         "convention": metrics.get("convention", "unknown")}
        for task, scores in (metrics.get("tasks") or {}).items()
        for item in scores.get("per_image", [])
    ]
    return pd.DataFrame(rows, columns=["task", "name", "psnr", "ssim", "convention"])


def sparsity_table(run_dir: PathLike) -> pd.DataFrame:
    """Per-tensor kept/total counts for every finished level (from ``sparsity_report.json``).

    Columns: level, tensor, kept, total, density.
    """
    rows = []
    for level, report in _level_files(run_dir, "sparsity_report.json"):
        for name, counts in (report.get("tensors") or {}).items():
            total = int(counts["total"])
            rows.append({"level": level, "tensor": name, "kept": int(counts["kept"]), "total": total,
                         "density": int(counts["kept"]) / total if total else 1.0})
    return pd.DataFrame(rows, columns=["level", "tensor", "kept", "total", "density"])


def load_mask(run_dir: PathLike, level: int) -> dict[str, Any]:
    """The mask of one level: ``{parameter name: bool tensor}`` (loaded with ``weights_only=True``).

    A level without ``mask.pt`` gives an empty dict.

    Example:
        >>> mask = load_mask("runs/smoke_1a2b3c4d", 2)           # doctest: +SKIP
        >>> sum(int(m.sum()) for m in mask.values())             # doctest: +SKIP
    """
    from mirl.pruning.mask import load_mask as read_mask

    path = level_dir(run_dir, level) / "mask.pt"
    return read_mask(path) if path.is_file() else {}


def mask_layer_table(mask_a: Mapping[str, Any], mask_b: Mapping[str, Any]) -> pd.DataFrame:
    """Per-layer comparison of two masks: density of each and their overlap (Jaccard index).

    The Jaccard index is |kept in A and B| / |kept in A or B| (1.0 when both keep nothing).

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
        union = int((a | b).sum())
        inter = int((a & b).sum())
        rows.append({
            "tensor": name,
            "size": a.numel(),
            "density_a": float(a.float().mean()),
            "density_b": float(b.float().mean()),
            "jaccard": inter / union if union else 1.0,
        })
    return pd.DataFrame(rows, columns=["tensor", "size", "density_a", "density_b", "jaccard"])


def density_evolution(run_dir: PathLike, tensors: Iterable[str] | None = None) -> pd.DataFrame:
    """Density of each tensor (rows) at each finished level (columns), from the sparsity reports."""
    table = sparsity_table(run_dir)
    if table.empty:
        return pd.DataFrame()
    wide = table.pivot(index="tensor", columns="level", values="density")
    order = list(dict.fromkeys(table["tensor"]))
    wide = wide.reindex(order)
    if tensors is not None:
        wide = wide.reindex([t for t in tensors if t in wide.index])
    return wide


def data_root_of(run_dir: PathLike) -> Path:
    """The dataset folder a run trained and was evaluated on.

    ``data: builtin`` means the demo corpus that :mod:`mirl.lottery` writes under
    ``datasets/builtin[_test<max_test_side>]`` (see :func:`mirl.paths.datasets_dir`).
    """
    config = load_config(run_dir)
    data = str(config.get("data", "builtin"))
    if data != "builtin":
        return Path(data).expanduser()
    from mirl.paths import datasets_dir

    side = int(config.get("max_test_side") or 0)
    root = datasets_dir() / (f"builtin_test{side}" if side else "builtin")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: the run's built-in dataset is missing; re-run the study to remake it")
    return root


def resolve_data_root(data_root: PathLike | None, data_dir: PathLike | None = None, max_test_side: int | None = 128,
                      progress: bool = False) -> Path:
    """``data_root``, or (``None``) the built-in demo dataset under ``data_dir`` (made if missing,
    with :func:`mirl.data.make_dataset.make_dataset`).

    Example:
        >>> resolve_data_root("/data/promptir")   # doctest: +SKIP
        PosixPath('/data/promptir')
    """
    if data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {root}")
        return root
    from mirl.data.make_dataset import make_dataset
    from mirl.paths import datasets_dir

    base = Path(data_dir) if data_dir is not None else datasets_dir()
    root = base / (f"builtin_test{max_test_side}" if max_test_side else "builtin")
    if not (root / "mirl_dataset.json").is_file():
        make_dataset(root, seed=0, max_test_side=max_test_side, progress=progress)
    return root


def load_level_model(run_dir: PathLike, level: int) -> Any:
    """The trained (masked) network of one level, on the CPU, in eval mode."""
    from mirl.models import load_checkpoint

    model, _ = load_checkpoint(level_dir(run_dir, level) / "model.pt")
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


def _restore(model: Any, image: Any, tile: int | None) -> Any:
    import torch

    try:
        from mirl.restore import restore_image
    except ImportError:  # restore module not available in this build: plain forward pass
        with torch.no_grad():
            return model(image[None].to(next(model.parameters()).device))[0].cpu()
    return restore_image(model, image, tile=tile)


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

    Example:
        >>> models = {f"level {k}": load_level_model(run, k) for k in (0, 3)}      # doctest: +SKIP
        >>> samples = gallery_samples(models, "datasets/builtin", ["derain"])      # doctest: +SKIP
    """
    import torch

    from mirl.data import expand_tasks
    from mirl.data.datasets import TestDataset
    from mirl.metrics import psnr

    samples = []
    for task in expand_tasks(list(tasks)):
        dataset = TestDataset(data_root, task, seed=seed)
        for index in range(min(n_images, len(dataset))):
            item = dataset[index]
            clean, degraded = item["clean"], item["degraded"]
            panels = [{"label": "degraded input", "image": _to_hwc(degraded), "psnr": psnr(degraded, clean, convention=convention)}]
            for label, model in models.items():
                with torch.no_grad():
                    restored = _restore(model, degraded, tile).clamp(0, 1)
                panels.append({"label": label, "image": _to_hwc(restored), "psnr": psnr(restored, clean, convention=convention)})
            panels.append({"label": "clean", "image": _to_hwc(clean), "psnr": None})
            samples.append({"task": task, "name": item["name"], "panels": panels, "convention": convention})
    return samples


def study_seconds(run_dir: PathLike) -> float:
    """Wall time the finished levels took (training and evaluation), from their ``metrics.json``.

    A level copied from a sibling run (a shared dense level) counts at its original cost.
    """
    return sum(float((m.get("train") or {}).get("level_seconds") or 0.0) for _, m in _level_files(run_dir, "metrics.json"))


def tasks_of(run_dir: PathLike) -> list[str]:
    """The tasks a run was evaluated on (from its last metrics, else its configuration)."""
    done = levels(run_dir)
    for level in reversed(done):
        path = level_dir(run_dir, level) / "metrics.json"
        if path.is_file():
            return list((_read_json(path).get("tasks") or {}).keys())
    from mirl.data import expand_tasks

    return expand_tasks(list(find_setting(load_config(run_dir), "tasks", ["all_in_one"])))


def mask_label(run_dir: PathLike, level: int, with_run: bool = False) -> str:
    """Label of one mask: ``level 3`` or, across runs, ``<run label> · level 3``."""
    return f"{run_label(run_dir)} · level {level}" if with_run else f"level {level}"


def mask_collection(run_dirs: Sequence[PathLike]) -> dict[str, dict[str, Any]]:
    """Every finished level's mask of one or more runs, in order: ``{label: mask}``.

    With one run labels are ``level k``; with several they start with the run's label.
    """
    with_run = len(run_dirs) > 1
    collection: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        for level in levels(run_dir):
            mask = load_mask(run_dir, level)
            if mask:
                collection[mask_label(run_dir, level, with_run)] = mask
    if not collection:
        raise FileNotFoundError(f"no mask.pt in the finished levels of {[str(r) for r in run_dirs]}")
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


def is_builtin_dataset(data_root: PathLike) -> bool:
    """Whether a dataset folder was written by ``mirl make-dataset`` from the built-in corpus."""
    manifest = Path(data_root) / "mirl_dataset.json"
    if not manifest.is_file():
        return False
    try:
        return _read_json(manifest).get("format") == "mirl.dataset"
    except (OSError, ValueError):
        return False


def available_tasks(data_root: PathLike, tasks: Sequence[str] | None = None) -> list[str]:
    """``tasks`` (aliases expanded), or every task whose test folder exists under ``data_root``."""
    from mirl.data import TASKS, expand_tasks
    from mirl.data.datasets import task_family

    if tasks:
        return expand_tasks(list(tasks))
    test = Path(data_root) / "test"
    found = [t for t in TASKS if (test / task_family(t)).is_dir()]
    if not found:
        raise FileNotFoundError(f"{data_root}: no test/<task> folders (expected the published layout)")
    return found


def evaluate_checkpoint(model: Any, data_root: PathLike, tasks: Sequence[str], limit: int | None = None,
                        tile: int | None = None, convention: str = "upstream", progress: bool = False) -> dict[str, Any]:
    """Score ``model`` on ``data_root`` with :func:`mirl.evaluate.evaluate_model` (upstream convention by default)."""
    from mirl.evaluate import evaluate_model

    return evaluate_model(model, data_root, list(tasks), convention=convention, tile=tile, limit=limit, progress=progress)


def scores_table(scores: Mapping[str, Any]) -> pd.DataFrame:
    """One row per task of :func:`mirl.evaluate.evaluate_model` output, with the convention."""
    rows = [{"task": task, "psnr": r["psnr"], "ssim": r["ssim"], "images": r["images"],
             "convention": scores.get("convention", "unknown"), "test_crop": scores.get("test_crop")}
            for task, r in scores["tasks"].items()]
    return pd.DataFrame(rows, columns=["task", "psnr", "ssim", "images", "convention", "test_crop"])


def resolve_checkpoint(checkpoint: PathLike | None, preset: str = "quickstart", runs_dir: PathLike | None = None,
                       overrides: Mapping[str, Any] | None = None, progress: bool = False) -> Path:
    """``checkpoint`` as a path, or (``None``) the last level's ``model.pt`` of the preset's study
    (run or resumed with :func:`mirl.lottery.run_study`)."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return path
    from mirl.lottery import run_study

    run_dir = run_study(preset, dict(overrides or {}), out=runs_dir or "runs", progress=progress)
    return level_dir(run_dir, levels(run_dir)[-1]) / "model.pt"
