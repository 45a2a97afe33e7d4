"""Where things live: the project's folders, and every file name of a run folder.

The root is ``$MIRL_HOME`` when set, else the checkout that holds this package (an editable
install), else the current directory. A study folder (written by :mod:`mirl.study.lottery`, read by
:mod:`mirl.analysis.results`, :mod:`mirl.scoring.evaluate`, :mod:`mirl.export` and the commands) looks like::

    runs/<preset>_<hash8>/config.json            the settings (run_config), data.json, log.txt (mirl.study.log)
    runs/<preset>_<hash8>/replicate_<r>/         one replicate (replicate_dir): init.pt, rewind.pt
        level_<k>/main/                          the ticket chain (level_dir(rep, k))
        level_<k>/<branch>/                      a branch of level k (level_dir(rep, k, branch)):
            mask.pt, sparsity_report.json, model.pt, metrics.json, train_log.csv,
            train_state.pt (while training), reused.json (a copied dense level), done.json (finished),
            tensorboard/{train,test}/ (event files: loss, lr, images/s; test PSNR per task)

No other module spells these names out; they ask here (as open_lth's ``foundations/paths.py``).

Example:
    >>> runs_dir().name
    'runs'
    >>> model_file(level_dir(replicate_dir("runs/smoke_de4d1844", 0), 2)).as_posix()
    'runs/smoke_de4d1844/replicate_0/level_2/main/model.pt'
    >>> level_dir("runs/smoke_de4d1844/replicate_1", 3, "random_reinit").as_posix()
    'runs/smoke_de4d1844/replicate_1/level_3/random_reinit'
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


# ---- a study folder -----------------------------------------------------------------------
#
#   runs/<preset>_<hash8>/config.json                 settings, layout version, hash (run_config)
#   runs/<preset>_<hash8>/data.json                   fingerprint of the data it trained and tested on
#   runs/<preset>_<hash8>/replicate_<r>/              seed = seed + r (replicate_dir)
#       init.pt, rewind.pt                            theta_0, theta_k (init_weights, rewind_weights)
#       rewind_state.pt                               optimiser state and step at theta_k (rewind_state)
#       level_<k>/main/                               the ticket chain (level_dir(rep, k))
#       level_<k>/<branch>/                           a branch of level k (level_dir(rep, k, branch))
#
# Each node folder (main or a branch) holds mask.pt, sparsity_report.json, model.pt,
# metrics.json, train_log.csv, train_state.pt (while training), reused.json, done.json.

LAYOUT_VERSION = 2  # 1: flat runs/<name>/level_<k>/ folders (mirl before the study tree)
MAIN = "main"  # the ticket chain's folder in every level

_REPLICATE_RE = re.compile(r"^replicate_(\d+)$")


def run_config(run_dir: PathLike) -> Path:
    """``config.json``: the resolved settings of a study (its presence makes a folder a study)."""
    return Path(run_dir) / "config.json"


def data_fingerprint(run_dir: PathLike) -> Path:
    """``data.json``: names and sizes of the training files, content hash of the test files."""
    return Path(run_dir) / "data.json"


def is_run_dir(path: PathLike) -> bool:
    """Whether ``path`` is a study folder (it holds ``config.json``)."""
    return run_config(path).is_file()


def run_hash(run_dir: PathLike) -> str:
    """The settings hash in a study folder's name (``smoke_de4d1844`` -> ``de4d1844``)."""
    return Path(run_dir).name.rpartition("_")[2]


def replicate_dir(run_dir: PathLike, replicate: int) -> Path:
    """The folder of one replicate of a study: ``<run_dir>/replicate_<r>`` (seed ``seed + r``)."""
    return Path(run_dir) / f"replicate_{int(replicate)}"


def replicate_number(path: PathLike) -> int | None:
    """``r`` for a folder named ``replicate_<r>``, else ``None``."""
    match = _REPLICATE_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def replicate_numbers(run_dir: PathLike) -> list[int]:
    """The replicates present in a study folder, ascending."""
    root = Path(run_dir)
    found = [replicate_number(c) for c in root.iterdir()] if root.is_dir() else []
    return sorted(r for r in found if r is not None)


def init_weights(replicate: PathLike) -> Path:
    """``init.pt``: theta_0 of a replicate, the weights every level resets to."""
    return Path(replicate) / "init.pt"


def rewind_weights(replicate: PathLike) -> Path:
    """``rewind.pt``: theta_k of a replicate, the weights after ``rewind_steps`` (``reset=rewind``)."""
    return Path(replicate) / "rewind.pt"


def rewind_state(replicate: PathLike) -> Path:
    """``rewind_state.pt``: the optimiser state and step at the rewind point; every rewound level
    resumes training from it (``reset=rewind``, :mod:`mirl.study.rewind`)."""
    return Path(replicate) / "rewind_state.pt"


def level_dir(replicate: PathLike, level: int, branch: str = MAIN) -> Path:
    """The node folder of one level of a replicate: ``<replicate>/level_<k>/<branch>``."""
    return Path(replicate) / f"level_{int(level)}" / branch


def level_number(path: PathLike) -> int | None:
    """``k`` for a folder named ``level_<k>``, else ``None``."""
    match = _LEVEL_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def level_numbers(replicate: PathLike, finished_only: bool = True, branch: str = MAIN) -> list[int]:
    """Levels of a replicate that hold ``branch``, ascending; by default only finished ones."""
    found = []
    root = Path(replicate)
    if not root.is_dir():
        return found
    for child in root.iterdir():
        level = level_number(child)
        node = child / branch
        if level is not None and node.is_dir() and (not finished_only or is_finished(node)):
            found.append(level)
    return sorted(found)


def branch_names(replicate: PathLike, level: int) -> list[str]:
    """The node folders of one level: ``main`` first, then the branches, sorted."""
    root = Path(replicate) / f"level_{int(level)}"
    names = sorted(c.name for c in root.iterdir() if c.is_dir() and not c.name.startswith(".")) if root.is_dir() else []
    return sorted(names, key=lambda n: n != MAIN)


def study_of(path: PathLike) -> Path | None:
    """The study folder that holds ``path`` (itself, or the nearest parent with ``config.json``)."""
    here = Path(path).absolute()
    for folder in (here, *here.parents):
        if is_run_dir(folder):
            return folder
    return None


def node_of(path: PathLike) -> tuple[Path, int, str] | None:
    """``(replicate folder, level, branch)`` of a node folder ``.../replicate_<r>/level_<k>/<branch>``."""
    node = Path(path)
    level = level_number(node.parent)
    if level is None or replicate_number(node.parent.parent) is None:
        return None
    return node.parent.parent, level, node.name


def old_layout(run_dir: PathLike) -> bool:
    """Whether a folder is a study of mirl's first layout (``level_<k>/`` right under it)."""
    root = Path(run_dir)
    return root.is_dir() and any(level_number(c) is not None and c.is_dir() for c in root.iterdir())


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
