"""Where things live: the project's folders, and every file name of a run folder.

The root is ``$MIRL_HOME`` when set, else the checkout that holds this package (an editable
install), else the current directory. A run folder (written by :mod:`mirl.lottery`, read by
:mod:`mirl.results`, :mod:`mirl.evaluate`, :mod:`mirl.export` and the commands) looks like::

    runs/<preset>_<hash8>/config.json          the settings (run_config)
    runs/<preset>_<hash8>/init.pt              theta_0 (init_weights)
    runs/<preset>_<hash8>/rewind.pt            theta_k, with reset=rewind (rewind_weights)
    runs/<preset>_<hash8>/level_<k>/           one level (level_dir):
        mask.pt, sparsity_report.json, model.pt, metrics.json, train_log.csv,
        train_state.pt (while training), reused.json (a copied dense level), done.json (finished)

No other module spells these names out; they ask here (as open_lth's ``foundations/paths.py``).

Example:
    >>> runs_dir().name
    'runs'
    >>> model_file(level_dir("runs/smoke_49d0c140", 2)).as_posix()
    'runs/smoke_49d0c140/level_2/model.pt'
    >>> builtin_dataset_dir(224, base="datasets").as_posix()
    'datasets/builtin_test224'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PathLike = str | os.PathLike

_LEVEL_RE = re.compile(r"^level_(\d+)$")


def project_root() -> Path:
    """``$MIRL_HOME``, or the repository containing the ``mirl`` package, or the cwd."""
    env = os.environ.get("MIRL_HOME")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "mirl").is_dir():
        return checkout
    return Path.cwd()


def runs_dir() -> Path:
    """``<root>/runs``: where studies are written unless ``--out`` says otherwise."""
    return project_root() / "runs"


def datasets_dir() -> Path:
    """``<root>/datasets``: where the built-in demo data sets are made."""
    return project_root() / "datasets"


def reports_dir() -> Path:
    """``<root>/reports``: where the HTML reports are published."""
    return project_root() / "reports"


def builtin_dataset_dir(max_test_side: int | None, base: PathLike | None = None) -> Path:
    """The folder of the built-in demo data set made with test images of at most
    ``max_test_side`` pixels a side (``None`` or 0: full size), under ``base`` (default
    :func:`datasets_dir`)."""
    root = Path(base) if base is not None else datasets_dir()
    return root / (f"builtin_test{int(max_test_side)}" if max_test_side else "builtin")


# ---- a run folder -------------------------------------------------------------------------

def run_config(run_dir: PathLike) -> Path:
    """``config.json``: the resolved settings of a run (its presence makes a folder a run)."""
    return Path(run_dir) / "config.json"


def init_weights(run_dir: PathLike) -> Path:
    """``init.pt``: theta_0, the initial weights every level resets to."""
    return Path(run_dir) / "init.pt"


def rewind_weights(run_dir: PathLike) -> Path:
    """``rewind.pt``: theta_k, the weights after ``rewind_steps`` (``reset=rewind``)."""
    return Path(run_dir) / "rewind.pt"


def is_run_dir(path: PathLike) -> bool:
    """Whether ``path`` is a run folder (it holds ``config.json``)."""
    return run_config(path).is_file()


def run_hash(run_dir: PathLike) -> str:
    """The settings hash in a run folder's name (``smoke_49d0c140`` -> ``49d0c140``)."""
    return Path(run_dir).name.rpartition("_")[2]


def level_dir(run_dir: PathLike, level: int) -> Path:
    """The folder of one level of a run: ``<run_dir>/level_<level>``."""
    return Path(run_dir) / f"level_{int(level)}"


def level_number(path: PathLike) -> int | None:
    """``k`` for a folder named ``level_<k>``, else ``None``."""
    match = _LEVEL_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def level_numbers(run_dir: PathLike, finished_only: bool = True) -> list[int]:
    """Level numbers present in ``run_dir``, ascending; by default only finished ones."""
    found = []
    root = Path(run_dir)
    if not root.is_dir():
        return found
    for child in root.iterdir():
        level = level_number(child)
        if level is not None and child.is_dir() and (not finished_only or is_finished(child)):
            found.append(level)
    return sorted(found)


# ---- a level folder -----------------------------------------------------------------------

def mask_file(level: PathLike) -> Path:
    """``mask.pt``: the level's mask (a dict of bool tensors), saved before training starts."""
    return Path(level) / "mask.pt"


def model_file(level: PathLike) -> Path:
    """``model.pt``: the level's trained, masked network (a mirl checkpoint)."""
    return Path(level) / "model.pt"


def metrics_file(level: PathLike) -> Path:
    """``metrics.json``: the level's scores, densities and training summary."""
    return Path(level) / "metrics.json"


def sparsity_file(level: PathLike) -> Path:
    """``sparsity_report.json``: kept/total weights per tensor and in total."""
    return Path(level) / "sparsity_report.json"


def train_log_file(level: PathLike) -> Path:
    """``train_log.csv``: loss and learning rate per epoch."""
    return Path(level) / "train_log.csv"


def train_state_file(level: PathLike) -> Path:
    """``train_state.pt``: the periodic resumable state while the level trains (removed after)."""
    return Path(level) / "train_state.pt"


def reused_file(level: PathLike) -> Path:
    """``reused.json``: present when a dense level was copied from a sibling run; names it."""
    return Path(level) / "reused.json"


def done_file(level: PathLike) -> Path:
    """``done.json``: written last; a level without it is unfinished."""
    return Path(level) / "done.json"


def is_finished(level: PathLike) -> bool:
    """Whether a level folder holds ``done.json``."""
    return done_file(level).is_file()


# The files of a finished level that another run can copy (a shared dense level), done.json last.
LEVEL_RESULT_FILES: tuple[str, ...] = tuple(f(".").name for f in (mask_file, sparsity_file, model_file, metrics_file, train_log_file))
