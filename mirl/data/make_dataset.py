"""Write the built-in corpus, degraded, in the published folder layout (``mirl make-dataset``).

Written tree (``OUT``)::

    train/denoise/Corpus/<photo>.png                      clean; noise is made on the fly
    train/derain/Rain100L/{input/<photo>-<k>_rainy.png, target/<photo>-<k>_gt.png}   3 per photo
    train/dehaze/OTS/{input/<photo>_<A>_<beta>_hazy.png, target/<photo>_gt.png}      3 per photo
    train/jpeg/Upload/{input/<photo>-<k>_jpeg.png, target/<photo>-<k>_gt.png}        2 per photo
    val/denoise/Corpus, val/derain/Rain100L, val/dehaze/SOTS, val/jpeg/Upload        1 per validation image
    test/denoise/Corpus, test/derain/Rain100L, test/dehaze/SOTS, test/jpeg/Upload    1 per test image
    mirl_dataset.json                                     settings, every file's parameters

Test images: with ``max_test_side`` set, each test photo gives a grid of up to ``TEST_GRID`` x
``TEST_GRID`` non-overlapping crops of ``max_test_side`` px, spread evenly over the photo and named
``<photo>-r<row>c<col>`` (the 4 test photos give 20 test images per task at 224 px); without it, one
full-size image per photo, named ``<photo>``. Every test image is degraded independently, from its own seed, at the
scale training sees: rain is drawn over the whole photo and cropped (the streak layer is normalised
per image, so rain drawn on a small crop alone is brighter than on a full-size training photo), and
haze uses the photo's own depth map, cropped. Validation images (``val/``, the photos of
:data:`mirl.data.corpus.VAL_NAMES`) are made exactly as test images are, from their own photos: a
recipe is chosen on them (``mirl evaluate --split val``), never on the test photos.

The tree is built in a temporary folder beside ``OUT`` and renamed into place, so ``OUT`` is either
complete or absent. Running again with the same settings does nothing.

Example:
    >>> manifest = make_dataset(Path("/tmp/ds"), progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mirl.errors import MirlError
from mirl.fileio import atomic_write_text, build_folder

log = logging.getLogger(__name__)

from . import DEMO_REPEATS
from .corpus import PHOTOS, Photo, corpus_photos, load_photo, motorcycle_depth, unavailable_photos
from .degrade import HAZE_AIRLIGHTS, HAZE_BETAS, add_haze, add_rain, derive_seed, pseudo_depth, social_upload
from .imageio import write_image

MANIFEST = "mirl_dataset.json"
FORMAT = "mirl.dataset"
# 2: several test crops per photo (TEST_GRID), rain and depth drawn at full photo size then cropped.
# 3: two training photos moved to a val/ split (the test images are unchanged, byte for byte).
VERSION = 3
# At most this many test crops per side of a photo when max_test_side is set (3: 20 test images per
# task from the 4 test photos at 224 px).
TEST_GRID = 3
TRAIN_VARIANTS = {"derain": 3, "dehaze": 3, "jpeg": 2}
SUBSETS = {
    "train": {"denoise": "Corpus", "derain": "Rain100L", "dehaze": "OTS", "jpeg": "Upload"},
    "test": {"denoise": "Corpus", "derain": "Rain100L", "dehaze": "SOTS", "jpeg": "Upload"},
}
SUBSETS["val"] = SUBSETS["test"]  # validation images are made, and laid out, as test images
SPLITS = ("train", "val", "test")


class DatasetExistsError(MirlError):
    """``OUT`` exists with other settings or other content."""


def _spread(size: int, side: int, count: int) -> list[int]:
    """Starts of ``count`` non-overlapping windows of ``side`` px spread evenly over ``size`` px
    (equal gaps before, between and after); one window is centred."""
    return [(size - count * side) * (i + 1) // (count + 1) + i * side for i in range(count)]


def test_crops(h: int, w: int, max_side: int | None, grid: int = TEST_GRID) -> list[tuple[str, tuple[int, int, int, int]]]:
    """``[(suffix, (top, left, height, width)), ...]``: the test crops of an ``h`` x ``w`` photo.

    Without ``max_side``, the whole photo with suffix ``""``. Else up to ``grid`` x ``grid``
    non-overlapping crops of at most ``max_side`` px a side, spread evenly, suffixes ``-r<i>c<j>``.

    Example:
        >>> [s for s, _ in test_crops(512, 768, 224)]
        ['-r0c0', '-r0c1', '-r0c2', '-r1c0', '-r1c1', '-r1c2']
        >>> test_crops(100, 300, 128)
        [('-r0c0', (0, 14, 100, 128)), ('-r0c1', (0, 157, 100, 128))]
    """
    if not max_side:
        return [("", (0, 0, h, w))]
    nh, nw = min(h, max_side), min(w, max_side)
    tops = _spread(h, nh, max(1, min(grid, h // nh)))
    lefts = _spread(w, nw, max(1, min(grid, w // nw)))
    return [(f"-r{i}c{j}", (t, l, nh, nw)) for i, t in enumerate(tops) for j, l in enumerate(lefts)]


def _crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    t, l, h, w = box
    return np.ascontiguousarray(img[t : t + h, l : l + w])


def _settings(seed: int, max_test_side: int | None, photos: list[Photo]) -> dict[str, Any]:
    return {"seed": seed, "max_test_side": max_test_side, "photos": [p.name for p in photos], "version": VERSION}


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _write_photo(tmp: Path, split: str, photo: Photo, seed: int, max_test_side: int | None) -> list[dict]:
    """Write every file for one photo under ``tmp``; return one record per written input."""
    full = load_photo(photo)
    depth = motorcycle_depth() if photo.name == "motorcycle" else None
    depth_source = "middlebury_disparity"
    if depth is None:  # one pseudo-depth per scene, shared by its hazy variants and crops (as in OTS)
        depth_source, depth = "pseudo", pseudo_depth(full.shape[:2], derive_seed(seed, photo.name, "depth"))
    if split == "train":
        return _write_image(tmp, split, photo, full, full, depth, depth_source, (0, 0) + full.shape[:2], photo.name, seed)
    records: list[dict] = []
    for suffix, box in test_crops(*full.shape[:2], max_test_side):
        records += _write_image(tmp, split, photo, full, _crop(full, box), _crop(depth, box), depth_source, box,
                                photo.name + suffix, seed)
    return records


def _write_image(tmp: Path, split: str, photo: Photo, full: np.ndarray, img: np.ndarray, depth: np.ndarray,
                 depth_source: str, box: tuple[int, int, int, int], name: str, seed: int) -> list[dict]:
    """Write one clean image ``img`` (``box`` of the photo ``full``) and its degraded versions as
    ``name``; return one record per written input. Test images (and their seeds) are named
    ``name``; training variants ``name-<k>``, seeded by ``(photo, k)`` as before."""
    sub = SUBSETS[split]
    records: list[dict] = []
    where = {"photo": photo.name, "image": name, "crop": list(box)}

    def rel(path: Path) -> str:
        return path.relative_to(tmp).as_posix()

    clean_path = tmp / split / "denoise" / sub["denoise"] / f"{name}.png"
    write_image(clean_path, img)
    records.append({"task": "denoise", "clean": rel(clean_path), **where})

    variants = TRAIN_VARIANTS if split == "train" else {k: 1 for k in TRAIN_VARIANTS}
    base = tmp / split / "derain" / sub["derain"]
    for k in range(variants["derain"]):
        stem = f"{name}-{k}" if split == "train" else name
        # Drawn over the whole photo, then cropped: the same streak scale as the full-size training photos.
        rainy, params = add_rain(full, derive_seed(seed, split, name, "derain", k))
        write_image(base / "input" / f"{stem}_rainy.png", _crop(rainy, box))
        _copy(clean_path, base / "target" / f"{stem}_gt.png")
        records.append({"task": "derain", "input": rel(base / "input" / f"{stem}_rainy.png"), **where, "params": params})

    base = tmp / split / "dehaze" / sub["dehaze"]
    _copy(clean_path, base / "target" / f"{name}_gt.png")
    rng = np.random.default_rng(derive_seed(seed, split, name, "dehaze"))
    pairs = [(a, b) for a in HAZE_AIRLIGHTS for b in HAZE_BETAS]
    for k, idx in enumerate(rng.choice(len(pairs), size=variants["dehaze"], replace=False)):
        a, b = pairs[int(idx)]
        hazy, params = add_haze(img, derive_seed(seed, split, name, "dehaze", k), depth=depth, airlight=a, beta=b)
        params["depth"] = depth_source
        path = base / "input" / f"{name}_{a:g}_{b:g}_hazy.png"
        write_image(path, hazy)
        records.append({"task": "dehaze", "input": rel(path), **where, "params": params})

    base = tmp / split / "jpeg" / sub["jpeg"]
    for k in range(variants["jpeg"]):
        stem = f"{name}-{k}" if split == "train" else name
        degraded, clean, params = social_upload(img, derive_seed(seed, split, name, "jpeg", k))
        write_image(base / "input" / f"{stem}_jpeg.png", degraded)
        write_image(base / "target" / f"{stem}_gt.png", clean)
        records.append({"task": "jpeg", "input": rel(base / "input" / f"{stem}_jpeg.png"), **where, "params": params})
    return records


def _older_version(old: dict, settings: dict) -> bool:
    """``old`` is a manifest this module wrote with the same settings but an older ``VERSION``."""
    old_settings = old.get("settings")
    if old.get("format") != FORMAT or not isinstance(old_settings, dict):
        return False
    version = old_settings.get("version")
    same = {k: v for k, v in old_settings.items() if k != "version"} == {k: v for k, v in settings.items() if k != "version"}
    return same and isinstance(version, int) and version < VERSION


def make_dataset(
    out: Path | str,
    seed: int = 0,
    max_test_side: int | None = None,
    progress: bool = True,
    photos: Sequence[str] | None = None,
) -> dict:
    """Write the degraded built-in corpus into ``out`` (layout above); return the manifest.

    Idempotent: an existing complete ``out`` with the same settings is left as is; one written by an
    older version of this module with the same settings is remade. Atomic: built in a temporary
    sibling folder and renamed. Photos whose package is missing are listed in the
    manifest's ``unavailable`` and skipped with a note. ``photos`` restricts the corpus to the
    named photos (quick demos and tests); each keeps its fixed split.

    Example:
        >>> m = make_dataset("/tmp/ds", max_test_side=256, progress=False)  # doctest: +SKIP
        >>> m["counts"]["test"]                                             # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if max_test_side is not None and max_test_side < 16:
        raise MirlError(f"max_test_side must be at least 16 (got {max_test_side})")
    available = corpus_photos("all")
    if photos is not None:
        known = {p.name for p in PHOTOS}
        unknown = sorted(set(photos) - known)
        if unknown:
            raise MirlError(f"unknown corpus photo(s) {unknown}; valid: {', '.join(p.name for p in PHOTOS)}")
    selected = [p for p in available if photos is None or p.name in photos]
    settings = _settings(seed, max_test_side, selected)
    manifest_path = out / MANIFEST
    stale = False
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("settings") == settings:
            old["reused"] = True
            return old
        stale = _older_version(old, settings)
        if not stale:
            raise DatasetExistsError(f"{out} already holds a dataset made with other settings {old.get('settings')}; choose another --out or delete it")
        log.info("%s was made by an older mirl (dataset version %s, now %s); remaking it", out, old["settings"]["version"], VERSION)
    if not stale and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetExistsError(f"{out} exists and is not an empty folder nor a mirl dataset; choose another --out")
    if not selected:
        raise MirlError("no corpus photo is available: install scikit-image, matplotlib, scikit-learn (see docs/data.md)")
    missing = [(p, why) for p, why in unavailable_photos("all") if photos is None or p.name in photos]
    for photo, why in missing:
        log.warning("corpus photo %s unavailable: %s", photo.name, why)
    with build_folder(out) as tmp:  # an older version or an empty folder is replaced once the new one is whole
        records: list[dict] = []
        for photo in tqdm(selected, desc="make-dataset", unit="photo", disable=not progress):
            records += _write_photo(tmp, photo.split, photo, seed, max_test_side)
        counts: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
        for photo in selected:
            for r in records:
                if r["photo"] == photo.name:
                    counts[photo.split][r["task"]] = counts[photo.split].get(r["task"], 0) + 1
        manifest = {
            "format": FORMAT,
            "settings": settings,
            "split": {s: [p.name for p in selected if p.split == s] for s in SPLITS},
            "licences": {p.name: f"{p.licence} ({p.package}/{p.relpath})" for p in selected},
            "unavailable": {p.name: why for p, why in missing},
            "recommended_repeats": dict(DEMO_REPEATS),
            "counts": counts,
            "files": records,
            "note": "built-in demo corpus: not a benchmark; never compare with paper numbers",
        }
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1))
    manifest["reused"] = False
    return manifest


def recommended_repeats(root: Path | str) -> dict[str, int] | None:
    """The repetition factors recorded by :func:`make_dataset` in ``root``, else ``None``."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text()).get("recommended_repeats") or {}) or None


__all__ = ["MANIFEST", "DatasetExistsError", "make_dataset", "recommended_repeats"]
