"""Which data a study trains and tests on: task repeats, and the data set folder of a study or run.

A study's ``data`` setting is either ``builtin`` (the demo data set written from the built-in
corpus by :func:`mirl.data.make_dataset.make_dataset`, under
:func:`mirl.paths.builtin_dataset_dir`) or a folder in the published layout.

Example:
    >>> parse_repeats("derain=8,dehaze=2")["derain"]
    8
    >>> uses_builtin_corpus({"data": "builtin"})
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from mirl import paths
from mirl.errors import MirlError
from mirl.fileio import read_json

from . import DEMO_REPEATS, PUBLISHED_REPEATS, TASKS, expand_tasks

PathLike = str | os.PathLike
BUILTIN = "builtin"  # the ``data`` setting that means the demo data set


class DataFolderError(MirlError, FileNotFoundError):
    """A data set folder that is missing or is not in the published layout."""


def parse_repeats(spec: str) -> dict[str, int]:
    """``published``, ``demo`` or ``task=factor,...`` (unnamed tasks keep the published factor).

    Example:
        >>> parse_repeats("demo")["derain"], parse_repeats("published")["derain"]
        (4, 120)
    """
    if spec == "published":
        return dict(PUBLISHED_REPEATS)
    if spec == "demo":
        return dict(DEMO_REPEATS)
    out = dict(PUBLISHED_REPEATS)
    for item in spec.split(","):
        task, _, factor = item.partition("=")
        if not factor.strip().isdigit():
            raise MirlError(f"bad repeats entry {item!r}; use published, demo, or task=factor,... e.g. derain=10,dehaze=1")
        for name in expand_tasks([task.strip()]):
            out[name] = int(factor)
    return out


def dataset_root(data: PathLike, max_test_side: int | None = None, *, base: PathLike | None = None,
                 build: bool = True, progress: bool = False) -> Path:
    """The data set folder of the ``data`` setting.

    ``builtin``: the demo data set with test images of at most ``max_test_side`` pixels a side,
    under ``base`` (default :func:`mirl.paths.datasets_dir`), made (or checked and reused) when
    ``build``; otherwise it must exist. Any other value: that folder, which must exist.

    Example:
        >>> dataset_root("/no/such/folder")
        Traceback (most recent call last):
        ...
        mirl.data.resolve.DataFolderError: data folder /no/such/folder does not exist; give a folder in the published layout (docs/data.md) or data=builtin
    """
    if str(data) != BUILTIN:
        root = Path(data).expanduser()
        if not root.is_dir():
            raise DataFolderError(f"data folder {root} does not exist; give a folder in the published layout (docs/data.md) or data=builtin")
        return root
    root = paths.builtin_dataset_dir(max_test_side, base)
    if build:
        from .make_dataset import make_dataset

        make_dataset(root, seed=0, max_test_side=max_test_side or None, progress=progress)
    elif not root.is_dir():
        raise DataFolderError(f"{root}: the built-in data set is missing; re-run the study (or mirl make-dataset) to make it")
    return root


def run_data_root(run_dir: PathLike) -> Path:
    """The data set folder a finished run trained and was evaluated on (from its ``config.json``).

    Example:
        >>> run_data_root("runs/quickstart_68b428ae")   # doctest: +SKIP
        PosixPath('.../datasets/builtin_test224')
    """
    config = read_json(paths.run_config(paths.study_of(run_dir) or run_dir))
    return dataset_root(config.get("data", BUILTIN), int(config.get("max_test_side") or 0) or None, build=False)


def uses_builtin_corpus(run: PathLike | Mapping[str, Any] | None) -> bool:
    """Whether a run (its folder or its ``config.json`` contents) used the built-in demo corpus.

    Example:
        >>> uses_builtin_corpus({"data": "/data/promptir"})
        False
    """
    if run is None:
        return False
    config = run if isinstance(run, Mapping) else read_json(paths.run_config(paths.study_of(run) or run))
    return str(config.get("data", BUILTIN)) == BUILTIN


def is_builtin_dataset(data_root: PathLike) -> bool:
    """Whether a data set folder was written by ``mirl make-dataset`` from the built-in corpus."""
    manifest = Path(data_root) / "mirl_dataset.json"
    try:
        return manifest.is_file() and read_json(manifest).get("format") == "mirl.dataset"
    except (OSError, ValueError, MirlError):  # unreadable or not JSON: not a manifest mirl wrote
        return False


def available_tasks(data_root: PathLike, tasks: Sequence[str] | None = None) -> list[str]:
    """``tasks`` (aliases expanded), or every task whose test folder exists under ``data_root``."""
    from .datasets import task_family

    if tasks:
        return expand_tasks(list(tasks))
    test = Path(data_root) / "test"
    found = [t for t in TASKS if (test / task_family(t)).is_dir()]
    if not found:
        raise DataFolderError(f"{data_root}: no test/<task> folders (expected the published layout, docs/data.md)")
    return found

