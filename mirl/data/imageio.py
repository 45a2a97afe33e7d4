"""Safe image reading and writing: clear errors naming the file, atomic writes.

Reading converts any mode to 8-bit RGB and says what it converted (grayscale, RGBA, palette,
16-bit, 32-bit float read as 0..1; a float image outside 0..1 is refused): ``read_image`` returns
``(array, notes)``. Images are read as they display: an EXIF
orientation tag (phone photos) is applied, so ``read_image``, ``read_alpha`` and ``image_size``
give the upright picture (for PNG, only an eXIf chunk before the pixel data counts, as Pillow
writes it). Warnings the decoder raises become notes, never loose ``UserWarning`` lines.
Writing goes to a temporary file beside the target and is renamed into place, so an interrupted
run never leaves a half-written image.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> write_image(path, np.zeros((8, 8, 3), np.uint8))
    >>> read_image(path)[0].shape
    (8, 8, 3)
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from mirl.errors import MirlError
from mirl.fileio import atomic_open

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit (about 89 MP); `mirl restore --max-pixels` raises it


class BadImageError(MirlError):
    """An image file could not be read (corrupt, truncated, not an image); names the file.

    ``path`` and ``reason`` hold the parts; ``hint`` (what to do) ends the message only.
    """

    def __init__(self, path: str | os.PathLike, reason: str, hint: str = "") -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}" + (f"; {hint}" if hint else ""))


_SKIP_HINT = "remove it or pass --skip-bad"
ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes the stored pixels upright (as ImageOps.exif_transpose)
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def is_image_name(path: str | os.PathLike) -> bool:
    """True when the file name has an image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


_PILLOW_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _own_pixel_limit() -> Iterator[None]:
    """Turn Pillow's decompression-bomb check off while a header is read (one thread at a time, so
    the limit always comes back): ``_open`` checks ``max_pixels`` itself, with a message that says
    how to raise it."""
    from PIL import Image

    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(path: Path, max_pixels: int | None = MAX_PIXELS):
    """Open ``path`` lazily; returns ``(image, notes)``, decoder warnings as notes. An image of more
    than ``max_pixels`` pixels (``None`` or 0: no limit) is refused as a possible decompression bomb."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if not path.exists():
        raise BadImageError(path, "file not found")
    if path.is_dir():
        raise BadImageError(path, "is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise BadImageError(path, "empty file (0 bytes)", "replace or remove it")
    try:
        with _own_pixel_limit(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            im = Image.open(path)
    except UnidentifiedImageError:
        raise BadImageError(path, "not a readable image (unknown format)", _SKIP_HINT) from None
    except OSError as exc:
        raise BadImageError(path, f"cannot open image ({exc})", _SKIP_HINT) from None
    pixels = im.size[0] * im.size[1]
    if max_pixels and pixels > max_pixels:
        im.close()
        raise BadImageError(path, f"{im.size[0]}x{im.size[1]} is {pixels:,} pixels, more than the limit of {max_pixels:,} "
                                  "that guards against decompression bombs",
                            f"if you trust the file, raise the limit: mirl restore --max-pixels {pixels}")
    return im, [f"decoder warning: {w.message}" for w in caught]


def _orientation(im) -> int:
    """The EXIF orientation (1..8) from the header alone; 1 when absent, unreadable or invalid."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a broken EXIF block is "no orientation", not noise
            if im.format == "PNG":  # Pillow's PNG getexif() decodes the whole image to look past IDAT
                raw = im.info.get("exif")
                if raw is None:
                    return 1
                exif = Image.Exif()
                exif.load(raw)
            else:
                exif = im.getexif()
            value = exif.get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - any EXIF parse failure means the tag cannot be trusted
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(im, orientation: int):
    """``im`` transposed as its EXIF ``orientation`` says (a new image), or ``im`` itself for 1."""
    from PIL import Image

    return im.transpose(getattr(Image.Transpose, _TRANSPOSE[orientation])) if orientation in _TRANSPOSE else im


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` as displayed (EXIF orientation applied), from the header only (cheap);
    raises :class:`BadImageError`."""
    path = Path(path)
    im, _ = _open(path)
    with im:
        w, h = im.size
        return (h, w) if _orientation(im) >= 5 else (w, h)


def read_image(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Decode ``path`` fully into a uint8 RGB array ``[H, W, 3]``; also return conversion notes.

    Corrupt, truncated and non-image files, and images of more than ``max_pixels`` pixels (``None``
    or 0: no limit), raise :class:`BadImageError` naming the file. An EXIF orientation is applied
    (the array is the picture as displayed) and noted; decoder warnings (e.g. a damaged EXIF block)
    are returned as notes.

    Example:
        >>> img, notes = read_image("photo.png")  # doctest: +SKIP
    """
    from PIL import Image

    path = Path(path)
    opened, notes = _open(path, max_pixels)
    im = opened
    try:
        tile = im.tile[0] if getattr(im, "tile", None) else None  # read before load() clears it
        rawmode = tile[3] if tile else ""
        if isinstance(rawmode, tuple):
            rawmode = rawmode[0] if rawmode else ""
        orientation = _orientation(im)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            im.load()
            if orientation in _TRANSPOSE:
                stored = im.size
                im = _upright(im, orientation)
                notes.append(f"EXIF orientation {orientation} applied (stored {stored[0]}x{stored[1]}, shown {im.size[0]}x{im.size[1]})")
            arr, more = _to_rgb(im, rawmode, path)
        notes += more
        notes += [f"decoder warning: {w.message}" for w in caught]
        return arr, notes
    except BadImageError:
        raise
    except (OSError, ValueError, SyntaxError, Warning, Image.DecompressionBombError) as exc:  # a frame larger than the header
        raise BadImageError(path, f"corrupt or truncated image ({exc})", "replace it, remove it, or pass --skip-bad") from None
    finally:
        opened.close()


def _check_unit_floats(arr: np.ndarray, path: Path) -> None:
    """Refuse a float image whose values are not 0..1 (0 black, 1 white; within the metrics' tolerance)."""
    from mirl.scoring.metrics import RANGE_TOLERANCE

    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if finite.size < arr.size or lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        bad = f"{arr.size - finite.size} NaN or infinite value(s)" if finite.size < arr.size else f"values {lo:.4g} to {hi:.4g}"
        raise BadImageError(path, f"32-bit float image with {bad}; mirl reads float images as 0 (black) to 1 (white)",
                            "scale it to 0..1, or save it with 8 or 16 bits per channel")


def _to_rgb(im, rawmode: str, path: Path) -> tuple[np.ndarray, list[str]]:
    """A loaded image of any mode -> uint8 RGB ``[H, W, 3]`` and notes on what was converted."""
    notes: list[str] = []
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if mode == "F":
            _check_unit_floats(arr, path)
            top, depth = 1.0, "32-bit float, 0..1"
        else:
            top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
            depth = "16-bit" if top > 255 else "8-bit"
        arr = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        notes.append(f"{mode} grayscale ({depth}) converted to 8-bit RGB")
        arr = np.repeat(arr[:, :, None], 3, axis=2)
        return np.ascontiguousarray(arr), notes
    if ";16" in str(rawmode):
        notes.append("16-bit image converted to 8 bits per channel")
    if mode == "RGB":
        arr = np.asarray(im)
    else:
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
            notes.append(f"{mode} image: alpha channel not restored (restore writes it back unchanged)")
        elif mode in ("L", "1"):
            notes.append(f"{mode} grayscale image converted to RGB")
        elif mode != "P":
            notes.append(f"{mode} image converted to RGB")
        arr = np.asarray(im.convert("RGB"))
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise BadImageError(path, f"unexpected image shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.uint8), notes


def read_alpha(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> np.ndarray | None:
    """The alpha channel (uint8 ``[H, W]``, EXIF orientation applied) of an image that has one, else ``None``."""
    im, _ = _open(Path(path), max_pixels)
    try:
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            orientation = _orientation(im)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # read_image has already noted them
                return np.asarray(_upright(im.convert("RGBA"), orientation))[:, :, 3].copy()
        return None
    finally:
        im.close()


def write_image(path: str | os.PathLike, array: np.ndarray, quality: int | None = None, compress_level: int = 1) -> None:
    """Write a uint8 ``[H, W]``, ``[H, W, 3]`` or ``[H, W, 4]`` array atomically (format from suffix).

    JPEG files use ``quality`` (default 95) and 4:2:0 chroma subsampling; PNG files use zlib
    ``compress_level`` (1 = fast, lossless like any level).
    """
    from PIL import Image

    path = Path(path)
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_image expects uint8, got {arr.dtype} for {path}")
    im = Image.fromarray(arr)
    suffix = path.suffix.lower()
    with atomic_open(path, "wb") as handle:
        if suffix in (".jpg", ".jpeg"):
            im.save(handle, format="JPEG", quality=quality or 95, subsampling=2)
        elif suffix == ".png":
            im.save(handle, format="PNG", compress_level=compress_level)
        else:
            im.save(handle, format=Image.registered_extensions().get(suffix, "PNG"))


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Sorted image files under ``folder``; a missing or image-less folder is a :class:`MirlError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MirlError(f"{folder}: folder not found")
    found = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file() and is_image_name(p) and not p.name.startswith("."))
    if not found:
        raise MirlError(f"{folder}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return found


def to_tensor(array: np.ndarray):
    """uint8 ``[H, W, 3]`` -> float32 torch tensor ``[3, H, W]`` in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float().div_(255.0)


def to_uint8(tensor) -> np.ndarray:
    """float tensor ``[3, H, W]`` or ``[1, 3, H, W]`` in [0, 1] -> uint8 ``[H, W, 3]`` (rounded)."""
    t = tensor.detach()
    if t.dim() == 4:
        t = t[0]
    return (t.clamp(0, 1).mul(255.0).round().to("cpu").numpy().transpose(1, 2, 0)).astype(np.uint8)


__all__ = [
    "BadImageError",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "image_size",
    "is_image_name",
    "list_images",
    "read_alpha",
    "read_image",
    "to_tensor",
    "to_uint8",
    "write_image",
]
