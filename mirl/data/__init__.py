"""Data for the study: the built-in corpus, degradations, the published folder layout, datasets.

Tasks: ``denoise_15``, ``denoise_25``, ``denoise_50``, ``derain``, ``dehaze`` (the paper's five,
``all_in_one``) and ``jpeg`` (a social-network upload chain; this kit's extension, not in
``all_in_one``). Submodules import their heavy dependencies lazily.

Example:
    >>> expand_tasks(["all_in_one"])
    ['denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze']
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
# its own mix (mirl/config.py).
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


__all__ = ["ALL_IN_ONE", "DEMO_REPEATS", "PUBLISHED_REPEATS", "TASKS", "TASK_ALIASES", "TaskError", "expand_tasks", "task_sigma"]
