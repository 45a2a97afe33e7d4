"""Datasets over the published folder layout (MIR-L / PromptIR), for training and testing.

Layout (``root`` is the folder that holds ``train/`` and ``test/``, and ``val/`` laid out as ``test/``)::

    {train,test}/denoise/<set>/**/*.{png,jpg,...}                  clean only; noise made on the fly
    {train,test}/derain/<set>/{input/X_rainy.png, target/X_gt.png}
    {train,test}/dehaze/<set>/{input/X_A_beta_hazy.png, target/X_gt.png}
    {train,test}/jpeg/<set>/{input/X_jpeg.png, target/X_gt.png}     this kit's extension

Inputs pair with targets by stem (``X_rainy`` with ``X_gt``; for haze ``X_0.8_1.2_hazy`` with
``X_gt``; several hazy inputs may share one target). An input without a target, a target without an
input, two files under one name (``a.png`` beside ``a.jpg``; two rainy inputs for one target), a
non-image file, an unreadable image or one smaller than the patch size is an error naming the file
(both files for a duplicate), or with ``skip_bad=True`` a warning, counted in ``skipped``. Images are read as they
display (:mod:`mirl.data.imageio` applies EXIF orientation), on both sides of a pair.

Randomness: a training item draws its patch, flip/rotation and noise from
``numpy.random.default_rng([seed, epoch, index])``, so batches do not depend on the number of
data-loader workers. Test noise is a function of (image name, sigma, seed) only.

Example:
    >>> ds = TrainDataset("datasets", ["all_in_one"])   # doctest: +SKIP
    >>> degraded, clean, task_index = ds[0]              # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from mirl.errors import MirlError

from . import PUBLISHED_REPEATS, TASKS, expand_tasks, task_sigma
from .degrade import add_gaussian_noise, derive_seed
from .imageio import BadImageError, image_size, is_image_name, read_image, to_tensor

SPLIT_NAMES = ("train", "val", "test")  # val: the built-in corpus's validation photos (mirl make-dataset)
# task family -> (folder under train/ or test/, suffix of input stems); denoise has no inputs.
FAMILIES: dict[str, tuple[str, str | None]] = {
    "denoise": ("denoise", None),
    "derain": ("derain", "_rainy"),
    "dehaze": ("dehaze", "_hazy"),
    "jpeg": ("jpeg", "_jpeg"),
}
_HAZE_PARAMS = re.compile(r"^(?P<id>.+?)_(?P<a>\d+(?:\.\d+)?)_(?P<b>\d+(?:\.\d+)?)$")


class DatasetError(MirlError):
    """A dataset folder does not follow the layout or holds a bad file; the message names it."""


def task_family(task: str) -> str:
    """``denoise_25`` -> ``denoise``; other tasks are their own family."""
    return "denoise" if task.startswith("denoise") else task


@dataclass(frozen=True)
class Sample:
    """One (degraded input, clean target) pair on disk; ``degraded`` is ``None`` for denoise."""

    task: str
    name: str
    clean: Path
    degraded: Path | None = None


def _key(stem: str, suffix: str | None, family: str) -> str:
    if suffix and stem.endswith(suffix):
        stem = stem[: -len(suffix)]
    if family == "dehaze":
        m = _HAZE_PARAMS.match(stem)
        if m:
            stem = m.group("id")
    return stem


def _target_key(stem: str) -> str:
    return stem[:-3] if stem.endswith("_gt") else stem


class _Problems:
    """Collects bad files: raise at once, or (skip_bad) warn and count."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []

    def report(self, path: Path | str, reason: str) -> None:
        if not self.skip_bad:
            raise DatasetError(f"{path}: {reason}; fix or remove it (or pass skip_bad=True / --skip-bad)")
        warnings.warn(f"skipping {path}: {reason}", stacklevel=3)
        self.skipped.append((str(path), reason))


def _files(folder: Path, problems: _Problems) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue  # hidden files and folders (.DS_Store, .ipynb_checkpoints) are not data
        if not is_image_name(p):
            problems.report(p, "not an image file")
            continue
        out.append(p)
    return out


def _claim(seen: dict[str, Path], name: str, path: Path, problems: _Problems, what: str) -> bool:
    """Record ``path`` under ``name``; a second file under one name is a problem naming both
    (it would be scored twice under one name). Returns whether ``path`` was recorded."""
    first = seen.setdefault(name, path)
    if first != path:
        problems.report(path, f"{what} {first} (both would count as {name!r}); keep one of them")
        return False
    return True


def _subsets(task_dir: Path) -> list[Path]:
    if not task_dir.is_dir():
        raise DatasetError(f"{task_dir}: folder not found; expected the published layout (see docs/data.md)")
    subsets = sorted(p for p in task_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subsets:
        raise DatasetError(f"{task_dir}: no dataset folder inside (e.g. {task_dir}/BSD68 or {task_dir}/Rain100L)")
    return subsets


def discover(root: str | os.PathLike, split: str, task: str, skip_bad: bool = False) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Find the samples of ``task`` under ``root/split``; returns ``(samples, skipped)``.

    Example:
        >>> samples, skipped = discover("datasets", "test", "derain")  # doctest: +SKIP
    """
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
    family = task_family(task)
    folder, suffix = FAMILIES[family]
    task_dir = Path(root) / split / folder
    problems = _Problems(skip_bad)
    samples: list[Sample] = []
    names: dict[str, Path] = {}
    for subset in _subsets(task_dir):
        if family == "denoise":
            for p in _files(subset, problems):
                name = f"{subset.name}/{p.relative_to(subset).with_suffix('').as_posix()}"
                if _claim(names, name, p, problems, "same name as"):
                    samples.append(Sample(task, name, p))
            continue
        inp, tgt = subset / "input", subset / "target"
        if not inp.is_dir() or not tgt.is_dir():
            raise DatasetError(f"{subset}: expected 'input/' and 'target/' folders (inputs *{suffix}, targets *_gt)")
        targets: dict[str, Path] = {}
        for p in _files(tgt, problems):
            key = _target_key(p.stem)
            if key in targets:
                problems.report(p, f"second target for {key!r} (also {targets[key].name})")
                continue
            targets[key] = p
        used: dict[str, Path] = {}
        for p in _files(inp, problems):
            key, name = _key(p.stem, suffix, family), f"{subset.name}/{p.stem}"
            if key not in targets:
                problems.report(p, f"input without a target (expected {tgt}/{key}_gt.*)")
                continue
            # several hazy inputs (airlight, beta) share one target, as in SOTS and OTS; other tasks pair one to one
            if not _claim(names, name, p, problems, "same name as") or (
                    family != "dehaze" and not _claim(used, key, p, problems, f"a second input for {targets[key].name}, beside")):
                continue
            used[key] = p
            samples.append(Sample(task, name, targets[key], p))
        for key in sorted(set(targets) - set(used)):
            problems.report(targets[key], f"target without an input (expected {inp}/{key}{suffix}.*)")
    if not samples:
        raise DatasetError(f"{task_dir}: no usable images for task {task!r}")
    return samples, problems.skipped


def _check_sizes(samples: list[Sample], min_side: int, problems: _Problems, what: str) -> list[Sample]:
    kept = []
    for s in samples:
        try:
            w, h = image_size(s.clean)
            if s.degraded is not None:
                wd, hd = image_size(s.degraded)
                if (wd, hd) != (w, h):
                    turned = ("; the sides are swapped: images are read as displayed (EXIF orientation applied), "
                              "check that both show upright") if (wd, hd) == (h, w) else ""
                    problems.report(s.degraded, f"size {wd}x{hd} differs from its target {s.clean.name} ({w}x{h}){turned}")
                    continue
        except BadImageError as exc:
            problems.report(str(exc).split(": ", 1)[0], str(exc).split(": ", 1)[-1])
            continue
        if min(w, h) < min_side:
            problems.report(s.degraded or s.clean, f"image is {w}x{h}, smaller than the {what} {min_side}")
            continue
        kept.append(s)
    return kept


# The 7 non-identity flips/rotations of upstream's ``data_augmentation`` (modes 1..7).
def augment(arr: np.ndarray, mode: int) -> np.ndarray:
    """Upstream's ``data_augmentation(image, mode)``: 0 identity, 1 flipud, 2 rot90, 3 rot90+flipud,
    4 rot180, 5 rot180+flipud, 6 rot270, 7 rot270+flipud (rotations counter-clockwise)."""
    if not 0 <= mode <= 7:
        raise ValueError(f"augmentation mode must be 0..7, got {mode}")
    out = np.rot90(arr, k=mode // 2) if mode >= 2 else arr
    if mode % 2 == 1:
        out = np.flipud(out)
    return np.ascontiguousarray(out)


class _ImageCache:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._store: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray:
        if path in self._store:
            return self._store[path]
        arr = read_image(path)[0]
        if self.enabled:
            self._store[path] = arr
        return arr


class TrainDataset(torch.utils.data.Dataset):
    """Random ``patch_size`` patches with one of 7 flips/rotations, tasks balanced by repetition.

    ``repeats`` maps task -> factor (default :data:`mirl.data.PUBLISHED_REPEATS`; the demo corpus
    wants :data:`mirl.data.DEMO_REPEATS`). Items are ``(degraded, clean, task_index)``: float32
    ``[3, P, P]`` in [0, 1] and the index of the task in :data:`mirl.data.TASKS`. Call
    :meth:`set_epoch` each epoch: per-item randomness comes from ``(seed, epoch, index)``.

    Example:
        >>> ds = TrainDataset("/tmp/ds", ["derain"], repeats={"derain": 2})  # doctest: +SKIP
        >>> ds.set_epoch(1); x, y, t = ds[0]                                 # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike,
        tasks: Sequence[str] | str,
        patch_size: int = 64,
        repeats: Mapping[str, int] | None = None,
        seed: int = 0,
        skip_bad: bool = False,
        cache: bool | None = None,
    ) -> None:
        self.root = Path(root)
        self.tasks = expand_tasks(tasks)
        self.patch_size = int(patch_size)
        self.repeats = {t: int((repeats or PUBLISHED_REPEATS).get(t, PUBLISHED_REPEATS[t])) for t in self.tasks}
        self.seed = int(seed)
        self.epoch = 0
        self.skipped: list[tuple[str, str]] = []
        problems = _Problems(skip_bad)
        self.samples: list[Sample] = []
        self.counts: dict[str, int] = {}
        for task in self.tasks:
            found, skipped = discover(self.root, "train", task, skip_bad)
            self.skipped += skipped
            found = _check_sizes(found, self.patch_size, problems, "patch size")
            if not found:
                raise DatasetError(f"{self.root}/train: no usable images for task {task!r}")
            self.counts[task] = len(found)
            self.samples += found * self.repeats[task]
        self.skipped += problems.skipped
        if cache is None:
            cache = len({s.clean for s in self.samples}) <= 1000
        self._cache = _ImageCache(cache)

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose patches/augmentations/noise ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        clean = self._cache.get(sample.clean)
        degraded = self._cache.get(sample.degraded) if sample.degraded is not None else None
        h, w = clean.shape[:2]
        p = self.patch_size
        if min(h, w) < p:
            raise DatasetError(f"{sample.clean}: image is {w}x{h}, smaller than the patch size {p}")
        top, left = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        mode = int(rng.integers(1, 8))  # identity never chosen, as upstream
        clean_patch = augment(clean[top : top + p, left : left + p], mode)
        sigma = task_sigma(sample.task)
        if sigma is not None:
            deg_patch, _ = add_gaussian_noise(clean_patch, sigma, [self.seed, self.epoch, int(index), 1])
        else:
            assert degraded is not None
            deg_patch = augment(degraded[top : top + p, left : left + p], mode)
        return to_tensor(deg_patch), to_tensor(clean_patch), TASKS.index(sample.task)


def center_crop_box(h: int, w: int, multiple: int) -> tuple[int, int, int, int]:
    """Upstream's ``crop_img(image, base)``: ``(top, left, height, width)`` of the centred crop
    whose sides are multiples of ``multiple``."""
    ch, cw = h % multiple, w % multiple
    return ch // 2, cw // 2, h - ch, w - cw


class TestDataset(torch.utils.data.Dataset):
    """Test images of one task (``split="val"``: the validation images): centre-cropped to ``crop_multiple`` (published) or, with ``pad=True``,
    reflect-padded to it (the restored output is cropped back before scoring).

    Items: ``{"name", "degraded", "clean", "crop": (top, left, h, w), "pad": (bottom, right), "task"}``;
    ``degraded`` may be larger than ``clean`` by ``pad``. Denoise noise comes from
    ``derive_seed(name, sigma, seed)`` only.

    Example:
        >>> item = TestDataset("/tmp/ds", "denoise_25")[0]  # doctest: +SKIP
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        root: str | os.PathLike,
        task: str,
        crop_multiple: int = 16,
        pad: bool = False,
        seed: int = 0,
        skip_bad: bool = False,
        split: str = "test",
    ) -> None:
        if task not in TASKS:
            raise DatasetError(f"TestDataset takes one task; got {task!r}; valid: {', '.join(TASKS)}")
        if split not in ("test", "val"):
            raise DatasetError(f"TestDataset scores the test or val split; got {split!r}")
        self.task, self.split = task, split
        self.root = Path(root)
        if split == "val" and not (self.root / "val").is_dir():
            raise DatasetError(f"{self.root}/val does not exist: a validation split is written by mirl make-dataset (the built-in "
                               "corpus; remake an older one); for another data set, lay out val/ as test/ (docs/data.md)")
        self.crop_multiple, self.pad, self.seed = int(crop_multiple), bool(pad), int(seed)
        found, self.skipped = discover(self.root, split, task, skip_bad)
        problems = _Problems(skip_bad)
        self.samples = _check_sizes(found, 1 if pad else self.crop_multiple, problems, "crop multiple")
        self.skipped += problems.skipped
        if not self.samples:
            raise DatasetError(f"{self.root}/{split}: no usable images for task {task!r}")

    @property
    def test_crop(self) -> str:
        """``center_crop_<m>`` or ``pad_<m>``: how test images were made a multiple of ``m``."""
        return f"{'pad' if self.pad else 'center_crop'}_{self.crop_multiple}"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        clean = read_image(s.clean)[0]
        degraded = read_image(s.degraded)[0] if s.degraded is not None else None
        h, w = clean.shape[:2]
        m = self.crop_multiple
        if self.pad:
            crop = (0, 0, h, w)
        else:
            crop = center_crop_box(h, w, m)
            t, l, ch, cw = crop
            clean = clean[t : t + ch, l : l + cw]
            degraded = degraded[t : t + ch, l : l + cw] if degraded is not None else None
        sigma = task_sigma(self.task)
        if sigma is not None:
            degraded, _ = add_gaussian_noise(clean, sigma, derive_seed(s.name, sigma, self.seed))
        assert degraded is not None
        deg_t = to_tensor(degraded)
        pad = (0, 0)
        if self.pad:
            pad = ((-h) % m, (-w) % m)
            if any(pad):
                mode = "reflect" if pad[0] < h and pad[1] < w else "replicate"
                deg_t = torch.nn.functional.pad(deg_t[None], (0, pad[1], 0, pad[0]), mode=mode)[0]
        return {"name": s.name, "task": self.task, "degraded": deg_t, "clean": to_tensor(clean), "crop": crop, "pad": pad}


__all__ = [
    "DatasetError",
    "FAMILIES",
    "Sample",
    "TestDataset",
    "TrainDataset",
    "augment",
    "center_crop_box",
    "discover",
    "task_family",
]
