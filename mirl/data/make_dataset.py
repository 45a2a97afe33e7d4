"""Write the built-in corpus, degraded, in the published folder layout (``mirl make-dataset``).

Written tree (``OUT``)::

    train/denoise/Corpus/<photo>.png                      clean; noise is made on the fly
    train/derain/Rain100L/{input/<photo>-<k>_rainy.png, target/<photo>-<k>_gt.png}   3 per photo
    train/dehaze/OTS/{input/<photo>_<A>_<beta>_hazy.png, target/<photo>_gt.png}      3 per photo
    train/jpeg/Upload/{input/<photo>-<k>_jpeg.png, target/<photo>-<k>_gt.png}        2 per photo
    test/denoise/Corpus, test/derain/Rain100L, test/dehaze/SOTS, test/jpeg/Upload    1 per photo
    mirl_dataset.json                                     settings, every file's parameters

The tree is built in a temporary folder beside ``OUT`` and renamed into place, so ``OUT`` is either
complete or absent. Running again with the same settings does nothing.

Example:
    >>> manifest = make_dataset(Path("/tmp/ds"), progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mirl.errors import MirlError
from mirl.fileio import atomic_write_text

from . import DEMO_REPEATS
from .corpus import PHOTOS, Photo, corpus_photos, load_photo, motorcycle_depth, unavailable_photos
from .degrade import HAZE_AIRLIGHTS, HAZE_BETAS, add_haze, add_rain, derive_seed, pseudo_depth, social_upload
from .imageio import write_image

MANIFEST = "mirl_dataset.json"
FORMAT = "mirl.dataset"
VERSION = 1
TRAIN_VARIANTS = {"derain": 3, "dehaze": 3, "jpeg": 2}
SUBSETS = {
    "train": {"denoise": "Corpus", "derain": "Rain100L", "dehaze": "OTS", "jpeg": "Upload"},
    "test": {"denoise": "Corpus", "derain": "Rain100L", "dehaze": "SOTS", "jpeg": "Upload"},
}


class DatasetExistsError(MirlError):
    """``OUT`` exists with other settings or other content."""


def _center_crop(img: np.ndarray, max_side: int | None) -> np.ndarray:
    if not max_side:
        return img
    h, w = img.shape[:2]
    nh, nw = min(h, max_side), min(w, max_side)
    t, l = (h - nh) // 2, (w - nw) // 2
    return np.ascontiguousarray(img[t : t + nh, l : l + nw])


def _settings(seed: int, max_test_side: int | None, photos: list[Photo]) -> dict[str, Any]:
    return {"seed": seed, "max_test_side": max_test_side, "photos": [p.name for p in photos], "version": VERSION}


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _write_photo(tmp: Path, split: str, photo: Photo, seed: int, max_test_side: int | None) -> list[dict]:
    """Write every file for one photo under ``tmp``; return one record per written input."""
    img = load_photo(photo)
    depth = motorcycle_depth() if photo.name == "motorcycle" else None
    if split == "test" and max_test_side:
        img = _center_crop(img, max_test_side)
        depth = _center_crop(depth, max_test_side) if depth is not None else None
    sub = SUBSETS[split]
    records: list[dict] = []

    def rel(path: Path) -> str:
        return path.relative_to(tmp).as_posix()

    clean_path = tmp / split / "denoise" / sub["denoise"] / f"{photo.name}.png"
    write_image(clean_path, img)
    records.append({"task": "denoise", "clean": rel(clean_path), "photo": photo.name})

    variants = TRAIN_VARIANTS if split == "train" else {k: 1 for k in TRAIN_VARIANTS}
    base = tmp / split / "derain" / sub["derain"]
    for k in range(variants["derain"]):
        stem = f"{photo.name}-{k}" if split == "train" else photo.name
        rainy, params = add_rain(img, derive_seed(seed, split, photo.name, "derain", k))
        write_image(base / "input" / f"{stem}_rainy.png", rainy)
        _copy(clean_path, base / "target" / f"{stem}_gt.png")
        records.append({"task": "derain", "input": rel(base / "input" / f"{stem}_rainy.png"), "photo": photo.name, "params": params})

    base = tmp / split / "dehaze" / sub["dehaze"]
    _copy(clean_path, base / "target" / f"{photo.name}_gt.png")
    if depth is None:  # one pseudo-depth per scene, shared by its hazy variants (as in OTS)
        depth_source, depth = "pseudo", pseudo_depth(img.shape[:2], derive_seed(seed, photo.name, "depth"))
    else:
        depth_source = "middlebury_disparity"
    rng = np.random.default_rng(derive_seed(seed, split, photo.name, "dehaze"))
    pairs = [(a, b) for a in HAZE_AIRLIGHTS for b in HAZE_BETAS]
    for k, idx in enumerate(rng.choice(len(pairs), size=variants["dehaze"], replace=False)):
        a, b = pairs[int(idx)]
        hazy, params = add_haze(img, derive_seed(seed, split, photo.name, "dehaze", k), depth=depth, airlight=a, beta=b)
        params["depth"] = depth_source
        path = base / "input" / f"{photo.name}_{a:g}_{b:g}_hazy.png"
        write_image(path, hazy)
        records.append({"task": "dehaze", "input": rel(path), "photo": photo.name, "params": params})

    base = tmp / split / "jpeg" / sub["jpeg"]
    for k in range(variants["jpeg"]):
        stem = f"{photo.name}-{k}" if split == "train" else photo.name
        degraded, clean, params = social_upload(img, derive_seed(seed, split, photo.name, "jpeg", k))
        write_image(base / "input" / f"{stem}_jpeg.png", degraded)
        write_image(base / "target" / f"{stem}_gt.png", clean)
        records.append({"task": "jpeg", "input": rel(base / "input" / f"{stem}_jpeg.png"), "photo": photo.name, "params": params})
    return records


def make_dataset(
    out: Path | str,
    seed: int = 0,
    max_test_side: int | None = None,
    progress: bool = True,
    photos: Sequence[str] | None = None,
) -> dict:
    """Write the degraded built-in corpus into ``out`` (layout above); return the manifest.

    Idempotent: an existing complete ``out`` with the same settings is left as is. Atomic: built in
    a temporary sibling folder and renamed. Photos whose package is missing are listed in the
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
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("settings") == settings:
            old["reused"] = True
            return old
        raise DatasetExistsError(f"{out} already holds a dataset made with other settings {old.get('settings')}; choose another --out or delete it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetExistsError(f"{out} exists and is not an empty folder nor a mirl dataset; choose another --out")
    if not selected:
        raise MirlError("no corpus photo is available: install scikit-image, matplotlib, scikit-learn (see docs/data.md)")
    missing = [(p, why) for p, why in unavailable_photos("all") if photos is None or p.name in photos]
    for photo, why in missing:
        print(f"note: corpus photo {photo.name} unavailable: {why}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        records: list[dict] = []
        for photo in tqdm(selected, desc="make-dataset", unit="photo", disable=not progress):
            records += _write_photo(tmp, photo.split, photo, seed, max_test_side)
        counts = {split: {} for split in ("train", "test")}
        for photo in selected:
            for r in records:
                if r["photo"] == photo.name:
                    counts[photo.split][r["task"]] = counts[photo.split].get(r["task"], 0) + 1
        manifest = {
            "format": FORMAT,
            "settings": settings,
            "split": {s: [p.name for p in selected if p.split == s] for s in ("train", "test")},
            "licences": {p.name: f"{p.licence} ({p.package}/{p.relpath})" for p in selected},
            "unavailable": {p.name: why for p, why in missing},
            "recommended_repeats": dict(DEMO_REPEATS),
            "counts": counts,
            "files": records,
            "note": "built-in demo corpus: not a benchmark; never compare with paper numbers",
        }
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["reused"] = False
    return manifest


def recommended_repeats(root: Path | str) -> dict[str, int] | None:
    """The repetition factors recorded by :func:`make_dataset` in ``root``, else ``None``."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text()).get("recommended_repeats") or {}) or None


__all__ = ["MANIFEST", "DatasetExistsError", "make_dataset", "recommended_repeats"]
