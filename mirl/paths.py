"""Where runs, data sets and reports live: never silently relative to the current directory.

The root is ``$MIRL_HOME`` when set, else the checkout that holds this package (an editable
install), else the current directory.

Example:
    >>> runs_dir().name
    'runs'
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """``$MIRL_HOME``, or the repository containing the ``mirl`` package, or the cwd."""
    env = os.environ.get("MIRL_HOME")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "mirl").is_dir():
        return checkout
    return Path.cwd()


def level_dir(run_dir: str | os.PathLike, level: int) -> Path:
    """The folder of one level of a run: ``<run_dir>/level_<level>``."""
    return Path(run_dir) / f"level_{int(level)}"


def runs_dir() -> Path:
    return project_root() / "runs"


def datasets_dir() -> Path:
    return project_root() / "datasets"


def reports_dir() -> Path:
    return project_root() / "reports"
