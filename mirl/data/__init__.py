"""Data for the study: the built-in corpus, degradations, the published folder layout, datasets.

Tasks: ``denoise_15``, ``denoise_25``, ``denoise_50``, ``derain``, ``dehaze`` (the paper's five,
``all_in_one``) and ``jpeg`` (a social-network upload chain; this kit's extension, not in
``all_in_one``). The main names of the submodules are exported here and imported on first use
(``import mirl.data`` does not import torch).

Example:
    >>> expand_tasks(["all_in_one"])
    ['denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze']
    >>> from mirl.data import parse_repeats, TestDataset
    >>> parse_repeats("demo")["dehaze"]
    4
"""

from __future__ import annotations

from typing import Iterable

from mirl.errors import MirlError

TASKS: tuple[str, ...] = ("denoise_15", "denoise_25", "denoise_50", "derain", "dehaze", "jpeg")
ALL_IN_ONE: tuple[str, ...] = ("denoise_15", "denoise_25", "denoise_50", "derain", "dehaze")
TASK_ALIASES: dict[str, tuple[str, ...]] = {
    "all_in_one": ALL_IN_ONE,
    "denoise": ("denoise_15", "denoise_25", "denoise_50"),
}

# Per-task repetition factors of the published training set (upstream: each sigma x3, derain x120,
# dehaze x1). jpeg is ours: x1, like dehaze, whose folder also holds several inputs per photo.
PUBLISHED_REPEATS: dict[str, int] = {"denoise_15": 3, "denoise_25": 3, "denoise_50": 3, "derain": 120, "dehaze": 1, "jpeg": 1}
# For the built-in demo corpus written by ``mirl make-dataset`` (11 train photos; 3 rainy and 3 hazy
# variants each): equal samples per task family, not per task: each sigma 11 x 4 = 44, derain and
# dehaze 33 x 4 = 132, so denoise, derain and dehaze are a third each. The quickstart preset sets
# its own mix (mirl/study/config.py).
DEMO_REPEATS: dict[str, int] = {"denoise_15": 4, "denoise_25": 4, "denoise_50": 4, "derain": 4, "dehaze": 4, "jpeg": 4}


class TaskError(MirlError, ValueError):
    """An unknown task name."""


def expand_tasks(tasks: Iterable[str] | str) -> list[str]:
    """Expand aliases (``all_in_one``, ``denoise``) and check names; order kept, duplicates dropped.

    Example:
        >>> expand_tasks("derain,jpeg")
        ['derain', 'jpeg']
    """
    if isinstance(tasks, str):
        tasks = [t for t in tasks.replace(",", " ").split() if t]
    out: list[str] = []
    for name in tasks:
        for task in TASK_ALIASES.get(name, (name,)):
            if task not in TASKS:
                valid = list(TASKS) + list(TASK_ALIASES)
                raise TaskError(f"unknown task {name!r}; valid: {', '.join(valid)}")
            if task not in out:
                out.append(task)
    if not out:
        raise TaskError(f"no task given; valid: {', '.join(list(TASKS) + list(TASK_ALIASES))}")
    return out


def task_sigma(task: str) -> int | None:
    """The noise sigma of a ``denoise_<sigma>`` task, else ``None``."""
    return int(task.split("_")[1]) if task.startswith("denoise_") else None


# Exported names of the submodules, imported on first access (PEP 562). make_dataset is not among
# them: it is also a submodule's name (use ``from mirl.data.make_dataset import make_dataset``).
_LAZY: dict[str, str] = {
    **dict.fromkeys(["Photo", "corpus_photos", "load_photo"], "corpus"),
    **dict.fromkeys(["DatasetError", "Sample", "TestDataset", "TrainDataset", "discover", "task_family"], "datasets"),
    **dict.fromkeys(["data_fingerprint", "fingerprint_changes"], "fingerprint"),
    **dict.fromkeys(["add_gaussian_noise", "add_haze", "add_rain", "social_upload"], "degrade"),
    **dict.fromkeys(["BadImageError", "list_images", "read_image", "write_image"], "imageio"),
    **dict.fromkeys(["BUILTIN", "DataFolderError", "available_tasks", "dataset_root", "is_builtin_dataset", "parse_repeats",
                     "run_data_root", "uses_builtin_corpus"], "resolve"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ALL_IN_ONE", "DEMO_REPEATS", "PUBLISHED_REPEATS", "TASKS", "TASK_ALIASES", "TaskError", "expand_tasks",
           "task_sigma", *sorted(_LAZY)]
