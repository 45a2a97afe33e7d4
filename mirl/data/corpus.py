"""The built-in corpus: fifteen colour photos shipped inside installed wheels, read by file path.

Nothing is downloaded and the packages holding the photos are never imported (sporco, mahotas and
imgaug do not import here): ``importlib.util.find_spec`` finds the package folder. A missing package
makes its photos unavailable; :func:`unavailable_photos` says which and why, and the rest are used.

Fixed split: ``TEST_NAMES`` (kodim23, monarch, barbara, china) are the test photos, ``VAL_NAMES``
(chelsea, flower) the validation photos, on which any recipe choice is made (never on the test
photos), and the other nine train. The corpus is a demo set, not a benchmark: never compare numbers on it with paper numbers.

Example:
    >>> [p.name for p in corpus_photos("test")]  # doctest: +SKIP
    ['kodim23', 'monarch', 'barbara', 'china']
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mirl.errors import MirlError


@dataclass(frozen=True)
class Photo:
    """One corpus photo: a short ``name`` (no underscores), its ``package`` and path inside it."""

    name: str
    package: str
    relpath: str
    licence: str
    split: str

    @property
    def path(self) -> Path | None:
        """Absolute path of the file, or ``None`` when the package or file is absent."""
        base = package_dir(self.package)
        if base is None:
            return None
        full = base / self.relpath
        return full if full.is_file() else None


_SK, _MPL, _SKL, _SPC, _MAH, _IAA = "skimage", "matplotlib", "sklearn", "sporco", "mahotas", "imgaug"

TEST_NAMES: tuple[str, ...] = ("kodim23", "monarch", "barbara", "china")
# Two former training photos (issue 31): a recipe is chosen on them, never on the test photos.
VAL_NAMES: tuple[str, ...] = ("chelsea", "flower")

_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("astronaut", _SK, "data/astronaut.png", "NASA, public domain"),
    ("coffee", _SK, "data/coffee.png", "CC0"),
    ("chelsea", _SK, "data/chelsea.png", "CC0"),
    ("rocket", _SK, "data/rocket.jpg", "public domain"),
    ("motorcycle", _SK, "data/motorcycle_left.png", "Middlebury 2014 stereo"),
    ("hopper", _MPL, "mpl-data/sample_data/grace_hopper.jpg", "public domain portrait"),
    ("china", _SKL, "datasets/images/china.jpg", "CC BY 2.0 (attribution)"),
    ("flower", _SKL, "datasets/images/flower.jpg", "CC BY 2.0 (attribution)"),
    ("kodim23", _SPC, "data/kodim23.png", "Kodak, unrestricted"),
    ("monarch", _SPC, "data/monarch.png", "Waterloo BragZone, free of restrictions"),
    ("sail", _SPC, "data/sail.png", "Waterloo BragZone, free of restrictions"),
    ("tulips", _SPC, "data/tulips.png", "Waterloo BragZone, free of restrictions"),
    ("barbara", _SPC, "data/barbara.png", "as stated by the sporco package"),
    ("luispedro", _MAH, "demos/data/luispedro.jpg", "MIT (mahotas package)"),
    ("quokka", _IAA, "quokka.jpg", "MIT (imgaug package)"),
)

PHOTOS: tuple[Photo, ...] = tuple(
    Photo(name, pkg, rel, lic, "test" if name in TEST_NAMES else "val" if name in VAL_NAMES else "train")
    for name, pkg, rel, lic in _ROWS
)
DISPARITY = (_SK, "data/motorcycle_disp.npz")  # true disparity of the motorcycle photo
SPLITS = ("train", "val", "test", "all")


def package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it; ``None`` if not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def corpus_photos(split: str = "all") -> list[Photo]:
    """The available photos of ``split`` (``train``, ``val``, ``test`` or ``all``) in the fixed order.

    Example:
        >>> len(corpus_photos("all")) <= 15
        True
    """
    if split not in SPLITS:
        raise MirlError(f"unknown corpus split {split!r}; valid: {list(SPLITS)}")
    return [p for p in PHOTOS if (split == "all" or p.split == split) and p.path is not None]


def unavailable_photos(split: str = "all") -> list[tuple[Photo, str]]:
    """Photos of ``split`` that cannot be found, each with the reason (missing package or file)."""
    out = []
    for p in PHOTOS:
        if split != "all" and p.split != split:
            continue
        base = package_dir(p.package)
        if base is None:
            out.append((p, f"package {p.package!r} not installed (pip install --no-deps {p.package})"))
        elif not (base / p.relpath).is_file():
            out.append((p, f"file {p.relpath} missing from package {p.package!r}"))
    return out


def load_photo(photo: Photo) -> np.ndarray:
    """The photo as uint8 RGB ``[H, W, 3]``."""
    from .imageio import read_image

    path = photo.path
    if path is None:
        raise MirlError(f"corpus photo {photo.name!r} is unavailable: package {photo.package!r} or its file is missing")
    return read_image(path)[0]


def motorcycle_depth() -> np.ndarray | None:
    """Normalised depth in [0, 1] (1 = far) for the motorcycle photo from its Middlebury disparity.

    Depth is ``1 / disparity`` scaled so its minimum is 0 and its 95th percentile 1 (clipped); invalid (non-finite or non-positive) pixels count as farthest.
    ``None`` when the file is not available.
    """
    base = package_dir(DISPARITY[0])
    if base is None or not (base / DISPARITY[1]).is_file():
        return None
    with np.load(base / DISPARITY[1]) as data:
        disp = np.asarray(data[data.files[0]], dtype=np.float64)
    valid = np.isfinite(disp) & (disp > 0)
    depth = np.zeros_like(disp)
    depth[valid] = 1.0 / disp[valid]
    lo, hi = depth[valid].min(), np.percentile(depth[valid], 95)
    depth = np.clip((depth - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    depth[~valid] = 1.0
    return depth.astype(np.float32)


__all__ = [
    "PHOTOS",
    "Photo",
    "SPLITS",
    "TEST_NAMES",
    "VAL_NAMES",
    "corpus_photos",
    "load_photo",
    "motorcycle_depth",
    "package_dir",
    "unavailable_photos",
]
