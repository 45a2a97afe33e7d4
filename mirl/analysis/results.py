"""Read study run directories (written by :mod:`mirl.study.lottery`) into pandas tables.

The layout of a study folder is owned by :mod:`mirl.paths`. Functions that read one chain of
levels take a replicate folder (``runs/<study>/replicate_<r>``) or a study folder, which means
its replicate 0, and a ``branch`` (default ``main``, the ticket); a branch that has no level 0 of
its own (every control) starts from main's dense level 0, which its curves include. Comparing masks is
:mod:`mirl.analysis.mask_compare`; restoring images for galleries is :mod:`mirl.analysis.gallery`; which data set a
run used is :mod:`mirl.data.resolve`.

Every table of scores carries a ``convention`` column (the metric convention of
:mod:`mirl.scoring.metrics`, e.g. ``upstream``: RGB, [0, 1], no border crop): numbers under different
conventions are not comparable.

Example:
    >>> from mirl.analysis.results import list_runs, metrics_table                # doctest: +SKIP
    >>> runs = list_runs("runs")                                        # doctest: +SKIP
    >>> metrics_table(runs.path[0])[["level", "task", "psnr", "input_psnr"]]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import pandas as pd

from mirl import paths
from mirl.errors import MirlError
from mirl.fileio import read_json
from mirl.paths import MAIN

PathLike = str | os.PathLike


# What to do about a damaged file of a study folder.
REDO_LEVEL = "if it belongs to a finished level, remove that level's done.json and run the study again to redo it"


def study_dir(path: PathLike) -> Path:
    """The study folder that holds ``path``; a study of mirl's first layout is refused in one line."""
    study = paths.study_of(path)
    if study is None:
        raise FileNotFoundError(f"{path} is not inside a study folder: no {paths.run_config('.').name} in it or above it")
    if paths.old_layout(study) and not paths.replicate_numbers(study):
        config = read_json(paths.run_config(study), REDO_LEVEL)
        raise MirlError(f"{study} is a study of an older mirl layout (flat level_<k> folders); recreate it with "
                        f"`mirl lottery --preset {config.get('preset', 'PRESET')} --out <new folder>`")
    return study


def replicate_of(path: PathLike) -> Path:
    """The replicate folder a path means: itself, the one holding it, or a study folder's replicate 0.

    Example:
        >>> replicate_of("runs/smoke_de4d1844").name     # doctest: +SKIP
        'replicate_0'
    """
    here = Path(path)
    for folder in (here, *here.parents):
        if paths.replicate_number(folder) is not None and paths.is_run_dir(folder.parent):
            return folder
    return paths.replicate_dir(study_dir(here), 0)


def load_config(run_dir: PathLike) -> dict[str, Any]:
    """The resolved study configuration (``config.json``) of a study, replicate or node folder;
    for a replicate or node, ``replicate`` and ``seed`` are that replicate's.

    Example:
        >>> load_config("runs/quickstart_1a2b3c4d/replicate_1")["seed"]   # doctest: +SKIP
        1
    """
    config = dict(read_json(paths.run_config(study_dir(run_dir)), REDO_LEVEL))
    for folder in (Path(run_dir), *Path(run_dir).parents):
        replicate = paths.replicate_number(folder)
        if replicate is not None:
            config["replicate"], config["seed"] = replicate, int(config.get("seed", 0)) + replicate
            break
    return config


def chain_node(run_dir: PathLike, level: int, branch: str = MAIN) -> Path:
    """The node folder of ``branch`` at ``level``: a branch without a level 0 of its own reads main's."""
    replicate = replicate_of(run_dir)
    node = paths.level_dir(replicate, level, branch)
    return node if (level != 0 or node.is_dir() or branch == MAIN) else paths.level_dir(replicate, 0)


def levels(run_dir: PathLike, finished_only: bool = True, branch: str = MAIN) -> list[int]:
    """Level numbers of one chain (``branch`` of a replicate), ascending; by default only finished ones.

    Example:
        >>> levels("runs/quickstart_1a2b3c4d")   # doctest: +SKIP
        [0, 1, 2, 3]
    """
    replicate = replicate_of(run_dir)
    found = set(paths.level_numbers(replicate, finished_only, branch))
    if branch != MAIN and 0 not in found and found and 0 in paths.level_numbers(replicate, finished_only):
        found.add(0)
    return sorted(found)


def branches_of(run_dir: PathLike) -> list[str]:
    """The branches (``main`` first) that have a finished node in any replicate of a study."""
    study = study_dir(run_dir)
    found = {MAIN}
    for r in paths.replicate_numbers(study):
        replicate = paths.replicate_dir(study, r)
        for level in paths.level_numbers(replicate, finished_only=False):
            found.update(b for b in paths.branch_names(replicate, level) if paths.is_finished(paths.level_dir(replicate, level, b)))
    return sorted(found, key=lambda b: (b != MAIN, b))


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
            from mirl.study.config import NOT_HASHED, study_preset

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


def list_runs(root: PathLike = "runs") -> pd.DataFrame:
    """One row per study folder under ``root``: name, hash, label, replicates, branches, the
    finished levels of replicate 0's main chain, path.

    Example:
        >>> list_runs("runs")[["label", "levels"]]   # doctest: +SKIP
    """
    rows = []
    root = Path(root)
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if not paths.is_run_dir(child):
                continue
            config = load_config(child)
            done = levels(child)
            rows.append({
                "name": config.get("name", child.name),
                "hash": paths.run_hash(child),
                "label": run_label(config),
                "replicates": len(paths.replicate_numbers(child)),
                "branches": branches_of(child),
                "levels": done,
                "last_level": done[-1] if done else None,
                "path": str(child),
            })
    return pd.DataFrame(rows, columns=["name", "hash", "label", "replicates", "branches", "levels", "last_level", "path"])


def node_record(path: PathLike) -> dict[str, Any]:
    """A JSON object of a node folder (``metrics.json``, ``sparsity_report.json``); refused in one
    line when it records another replicate, level or branch than the folder it lies in (another
    node's files copied there), or when its node is stale (made by other code or options than this
    mirl's, or from a stale level of main: :mod:`mirl.study.stale`), with the command that trains it
    again. A record without those entries is taken as it is.

    Example:
        >>> node_record("runs/smoke_de4d1844/replicate_0/level_1/random_reinit/metrics.json")["branch"]  # doctest: +SKIP
        'random_reinit'
    """
    path = Path(path)
    data = read_json(path, REDO_LEVEL)
    if not isinstance(data, dict):
        raise MirlError(f"{path} is not a JSON object; {REDO_LEVEL}")
    place = paths.node_of(path.parent)
    if place is not None:
        here = {"replicate": paths.replicate_number(place[0]), "level": place[1], "branch": place[2]}
        different = [f"{key} {data[key]!r} (here: {value!r})" for key, value in here.items() if key in data and data[key] != value]
        if different:
            raise MirlError(f"{path} belongs to another node: it records {', '.join(different)}; these are another node's "
                            f"files copied here: delete the folder {path.parent} and run the study again to redo the node")
        from mirl.study.stale import node_stale

        why = node_stale(place[0], place[1], place[2]) if paths.is_finished(path.parent) else None
        if why is not None:
            study = place[0].parent
            raise MirlError(f"{path.parent} is stale ({why}): made by other code or options than this mirl's, it is not "
                            f"mixed into a report; `mirl status {study}` gives the command that trains it again (--rerun-stale)")
    return data


def task_scores(metrics: Mapping[str, Any], path: PathLike) -> dict[str, Any]:
    """The per-task scores (``tasks``) of a finished node's ``metrics.json`` at ``path``; a file
    without them is refused (a level is never dropped from a summary in silence).

    Example:
        >>> task_scores({"tasks": {"derain": {"psnr": 30.0}}}, "metrics.json")
        {'derain': {'psnr': 30.0}}
    """
    tasks = metrics.get("tasks")
    if not isinstance(tasks, dict) or not tasks or not all(isinstance(v, dict) for v in tasks.values()):
        raise MirlError(f"{path} holds no per-task scores ('tasks'); remove {paths.done_file(Path(path).parent)} and run the "
                        "study again to score that level")
    return tasks


def check_distinct_replicates(records: Iterable[tuple[PathLike, Mapping[str, Any]]]) -> None:
    """Refuse replicates that are one network: ``(node folder, metrics)`` of one level of one
    variant, one per replicate, where two record the same trained weights or the same seed (a
    replicate folder copied over another); an interval over them would count one run twice.

    Example:
        >>> check_distinct_replicates([("r0/level_1/main", {"seed": 0}), ("r1/level_1/main", {"seed": 1})])
    """
    for key, what in (("weights", "the same trained weights"), ("seed", "the same seed")):
        seen: dict[Any, PathLike] = {}
        for node, metrics in records:
            value = metrics.get(key)
            if value is None:
                continue
            if value in seen:
                raise MirlError(f"{seen[value]} and {node} hold {what} ({key} {value}): one replicate copied over another, "
                                "not two replicates; delete the copy's replicate folder and run the study again to train it")
            seen[value] = node


def load_metrics(run_dir: PathLike, level: int, branch: str = MAIN) -> dict[str, Any]:
    """The ``metrics.json`` of one level of one chain (:func:`node_record`)."""
    return node_record(paths.metrics_file(chain_node(run_dir, level, branch)))


def load_sparsity(run_dir: PathLike, level: int, branch: str = MAIN) -> dict[str, Any]:
    """The ``sparsity_report.json`` of one level of one chain (:func:`node_record`)."""
    return node_record(paths.sparsity_file(chain_node(run_dir, level, branch)))


def _level_files(run_dir: PathLike, file: Any, branch: str = MAIN) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(level, parsed JSON)`` of ``file(node folder)`` (a :mod:`mirl.paths` function) in every
    finished level of the chain; a finished level without the file is an error that names it."""
    for level in levels(run_dir, branch=branch):
        path = file(chain_node(run_dir, level, branch))
        if not path.is_file():
            raise MirlError(f"{path} is missing from a finished level; remove {paths.done_file(path.parent)} and run the "
                            "study again to redo that level")
        yield level, node_record(path)


def metrics_table(run_dir: PathLike, label: str | None = None, branch: str = MAIN) -> pd.DataFrame:
    """Long table of scores: one row per (level, task) with both densities and the convention.

    Columns: run, label, level, remaining_prunable, remaining_trainable (fractions in [0, 1]),
    task, psnr, ssim, input_psnr, input_ssim (the degraded input's own scores), images, convention.

    Example:
        >>> t = metrics_table("runs/smoke_1a2b3c4d")       # doctest: +SKIP
        >>> t.pivot(index="level", columns="task", values="psnr")   # doctest: +SKIP
    """
    run_dir = replicate_of(run_dir)
    label = label or run_label(run_dir)
    rows = []
    for level, metrics in _level_files(run_dir, paths.metrics_file, branch):
        for task, scores in task_scores(metrics, paths.metrics_file(chain_node(run_dir, level, branch))).items():
            rows.append({
                "run": run_dir.parent.name,
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


def per_image_table(run_dir: PathLike, level: int, branch: str = MAIN) -> pd.DataFrame:
    """Per-image PSNR/SSIM of one level: columns task, name, psnr, ssim, convention."""
    metrics = load_metrics(run_dir, level, branch)
    rows = [
        {"task": task, "name": item.get("name"), "psnr": item.get("psnr"), "ssim": item.get("ssim"),
         "convention": metrics.get("convention", "unknown")}
        for task, scores in (metrics.get("tasks") or {}).items()
        for item in scores.get("per_image", [])
    ]
    return pd.DataFrame(rows, columns=["task", "name", "psnr", "ssim", "convention"])


def sparsity_table(run_dir: PathLike, branch: str = MAIN) -> pd.DataFrame:
    """Per-tensor kept/total counts for every finished level (from ``sparsity_report.json``).

    Columns: level, tensor, kept, total, density.
    """
    rows = []
    for level, report in _level_files(run_dir, paths.sparsity_file, branch):
        for name, counts in (report.get("tensors") or {}).items():
            total = int(counts["total"])
            rows.append({"level": level, "tensor": name, "kept": int(counts["kept"]), "total": total,
                         "density": int(counts["kept"]) / total if total else 1.0})
    return pd.DataFrame(rows, columns=["level", "tensor", "kept", "total", "density"])


def level_mask(run_dir: PathLike, level: int, branch: str = MAIN) -> dict[str, Any]:
    """The mask of one level: ``{parameter name: bool tensor}`` (loaded with ``weights_only=True``).

    A level without a mask gives an empty dict. (:func:`mirl.pruning.load_mask` reads a mask file.)

    Example:
        >>> mask = level_mask("runs/smoke_de4d1844", 2)           # doctest: +SKIP
        >>> sum(int(m.sum()) for m in mask.values())              # doctest: +SKIP
    """
    from mirl.pruning import load_mask

    path = paths.mask_file(chain_node(run_dir, level, branch))
    return load_mask(path) if path.is_file() else {}


def density_evolution(run_dir: PathLike, tensors: Iterable[str] | None = None, branch: str = MAIN) -> pd.DataFrame:
    """Density of each tensor (rows) at each finished level (columns), from the sparsity reports."""
    table = sparsity_table(run_dir, branch)
    if table.empty:
        return pd.DataFrame()
    wide = table.pivot(index="tensor", columns="level", values="density")
    order = list(dict.fromkeys(table["tensor"]))
    wide = wide.reindex(order)
    if tensors is not None:
        wide = wide.reindex([t for t in tensors if t in wide.index])
    return wide


def study_seconds(run_dir: PathLike) -> float:
    """Wall time the finished nodes of a study took (training and scoring, every replicate and
    branch), from their ``metrics.json``. A dense level copied from a sibling study counts at its
    original cost.
    """
    study = study_dir(run_dir)
    total = 0.0
    for r in paths.replicate_numbers(study):
        replicate = paths.replicate_dir(study, r)
        for level in paths.level_numbers(replicate, finished_only=False):
            for branch in paths.branch_names(replicate, level):
                node = paths.level_dir(replicate, level, branch)
                if paths.is_finished(node):
                    total += float((read_json(paths.metrics_file(node), REDO_LEVEL).get("train") or {}).get("level_seconds") or 0.0)
    return total


def tasks_of(run_dir: PathLike) -> list[str]:
    """The tasks a run was evaluated on (from its last metrics, else its configuration)."""
    scored = list(_level_files(run_dir, paths.metrics_file))
    if scored:
        return list((scored[-1][1].get("tasks") or {}).keys())
    from mirl.data import expand_tasks

    return expand_tasks(list(load_config(run_dir).get("tasks") or ["all_in_one"]))


@dataclass(frozen=True)
class CheckpointOrigin:
    """Where a checkpoint comes from: its study folder (``None`` outside one) and the tasks it was
    trained on (outside a study: the published network's three-task all-in-one set)."""

    study: Path | None
    trained_tasks: tuple[str, ...]

    def data_root(self) -> Path | None:
        """The data set the study trained and scored on (``None`` outside a study)."""
        from mirl.data.resolve import run_data_root

        return run_data_root(self.study) if self.study is not None else None


def checkpoint_origin(checkpoint: PathLike) -> CheckpointOrigin:
    """What the defaults of scoring ``checkpoint`` (a file or a study's folder) should be
    (notebook 05, ``mirl evaluate``).

    Example:
        >>> checkpoint_origin("published/mir-l.ckpt").trained_tasks[-1]
        'dehaze'
    """
    from mirl.data import ALL_IN_ONE, expand_tasks

    study = paths.study_of(checkpoint)
    if study is None:
        return CheckpointOrigin(None, tuple(ALL_IN_ONE))
    return CheckpointOrigin(study, tuple(expand_tasks(list(load_config(study).get("tasks") or ["all_in_one"]))))

