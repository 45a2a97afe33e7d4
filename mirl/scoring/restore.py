"""Restore images of any size: pad to a multiple of 8, optional overlapping tiles blended smoothly.

Example:
    >>> import torch
    >>> from mirl.models import build_model
    >>> out = restore_image(build_model("tiny"), torch.rand(3, 37, 50), tile=32, overlap=8)
    >>> tuple(out.shape)
    (3, 37, 50)
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from mirl.errors import MirlError

MULTIPLE = 8  # PromptIR downsamples three times
DEFAULT_OVERLAP = 32  # px shared by neighbouring tiles
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def _pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"`` (benchmarks/inference.py measures its PSNR cost)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {list(PRECISIONS)}")
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _forward(model: nn.Module, x: torch.Tensor, device: torch.device, dtype: torch.dtype, precision: str = "fp32") -> torch.Tensor:
    """Run the model on a [1, 3, h, w] tensor of any size; returns a float32 CPU-or-device tensor."""
    xp, h, w = _pad_to_multiple(x.to(device=device, dtype=dtype))
    with precision_context(device, precision):
        out = model(xp)[..., :h, :w].float()
    if not bool(torch.isfinite(out).all()):
        raise MirlError(f"the network's output holds NaN or infinite values ({int((~torch.isfinite(out)).sum()):,} of "
                        f"{out.numel():,}): no score or image is made from it; check the checkpoint's weights "
                        "(mirl info) and, with --precision bf16, try fp32")
    return out


def _ramp(length: int, overlap: int, left: bool, right: bool) -> torch.Tensor:
    """1-D blend weights: raised-cosine ramps over ``overlap`` at sides shared with a neighbour."""
    w = torch.ones(length, dtype=torch.float32)
    n = min(overlap, length)
    if n > 0:
        r = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(n, dtype=torch.float32) + 0.5) / n)
        if left:
            w[:n] = torch.minimum(w[:n], r)
        if right:
            w[length - n :] = torch.minimum(w[length - n :], r.flip(0))
    return w


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` px covering ``size`` with at least ``overlap`` px shared."""
    if tile >= size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def restore_image(
    model: nn.Module,
    image: torch.Tensor,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    progress: bool = False,
    precision: str = "fp32",
) -> torch.Tensor:
    """Restore ``image`` ([1, 3, H, W] or [3, H, W], floats in [0, 1]); same shape out, clamped to [0, 1].

    Untiled: reflect-pad to a multiple of 8, one forward pass on the model's device, crop back.
    Tiled (``tile`` < H or W): tiles of ``tile`` px overlapping by ``overlap`` px, each padded the
    same way, blended with raised-cosine weights; the full result is accumulated on the CPU so
    only one tile lives on the device. ``tile`` >= both sides gives exactly the untiled result.
    ``precision="bf16"`` runs the network under bf16 autocast (faster on recent GPUs).

    Example:
        >>> out = restore_image(model, img, tile=512, overlap=32)  # doctest: +SKIP
    """
    if image.dim() not in (3, 4) or image.shape[-3] != 3 or (image.dim() == 4 and image.shape[0] != 1):
        raise ValueError(f"expected a [3, H, W] or [1, 3, H, W] image tensor, got {tuple(image.shape)}")
    squeeze = image.dim() == 3
    x = image[None] if squeeze else image
    device, dtype = _model_device_dtype(model)
    h, w = x.shape[-2:]
    with torch.inference_mode():
        if tile is None or (tile >= h and tile >= w):
            out = _forward(model, x, device, dtype, precision).clamp_(0, 1).to(image.device)
            return out[0] if squeeze else out
        if tile < MULTIPLE:
            raise ValueError(f"tile must be at least {MULTIPLE} px, got {tile}")
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
        th, tw = min(tile, h), min(tile, w)
        ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
        acc = torch.zeros((1, 3, h, w), dtype=torch.float32)
        weight = torch.zeros((1, 1, h, w), dtype=torch.float32)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ys) * len(xs), desc="tiles", unit="tile", disable=not progress, leave=False)
        for i, y0 in enumerate(ys):
            wy = _ramp(th, overlap, i > 0, i < len(ys) - 1)
            for j, x0 in enumerate(xs):
                wx = _ramp(tw, overlap, j > 0, j < len(xs) - 1)
                patch = x[..., y0 : y0 + th, x0 : x0 + tw]
                res = _forward(model, patch, device, dtype, precision).cpu()
                wt = (wy[:, None] * wx[None, :])[None, None]
                acc[..., y0 : y0 + th, x0 : x0 + tw] += res * wt
                weight[..., y0 : y0 + th, x0 : x0 + tw] += wt
                bar.update(1)
        bar.close()
        out = acc.div_(weight).clamp_(0, 1).to(image.device)
        return out[0] if squeeze else out


# ------------------------------------------------------------------------------------ files/folders
@dataclass
class RestoreSummary:
    """What :func:`restore_files` did: written outputs, skipped inputs with reasons, notes."""

    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)


def collect_inputs(inputs: Sequence[str | os.PathLike], skip_bad: bool = False) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Expand files and folders into ``(input_path, output_relative_path)`` pairs.

    Files keep their stem (``photo.jpg`` -> ``photo.png``); files inside a folder keep their path
    relative to it under the folder's name. Non-image files, empty folders and missing paths are
    errors (or, with ``skip_bad``, skipped and returned in the second list). Hidden files are ignored.
    """
    from mirl.data.imageio import is_image_name

    pairs: list[tuple[Path, Path]] = []
    skipped: list[tuple[str, str]] = []

    def bad(path: Path, reason: str) -> None:
        if not skip_bad:
            raise MirlError(f"{path}: {reason}; fix or remove it, or pass --skip-bad to skip such files")
        skipped.append((str(path), reason))

    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not any(q.startswith(".") for q in p.relative_to(path).parts))
            images = []
            for p in files:
                (images.append(p) if is_image_name(p) else bad(p, "not an image file (by its extension)"))
            if not images:
                bad(path, "folder holds no images")
            for p in images:
                pairs.append((p, Path(path.resolve().name) / p.relative_to(path).with_suffix(".png")))
        elif path.is_file():
            pairs.append((path, Path(path.stem + ".png")))
        else:
            bad(path, "no such file or folder")
    seen: dict[Path, Path] = {}
    for src, rel in pairs:
        if rel in seen:
            raise MirlError(f"{src} and {seen[rel]} would both be written as {rel}; restore them in separate runs or rename one")
        seen[rel] = src
    return pairs, skipped


def check_tiling(tile: int | None, overlap: int) -> None:
    """Refuse ``tile`` / ``overlap`` settings that :func:`restore_image` cannot use (a :class:`MirlError`)."""
    if overlap < 0:
        raise MirlError(f"overlap (--overlap) must be 0 or more px, got {overlap}")
    if tile is None:
        return
    if tile < MULTIPLE:
        raise MirlError(f"tile (--tile) must be at least {MULTIPLE} px, got {tile}; leave it out to restore whole images")
    if overlap >= tile:
        raise MirlError(f"overlap ({overlap} px, --overlap) must be smaller than tile ({tile} px, --tile); "
                        f"e.g. --overlap {tile // 4}")


def check_out_dir(out_dir: str | os.PathLike) -> None:
    """Refuse an output folder that is a file or cannot be created or written (a :class:`MirlError`)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MirlError(f"--out {out}: is a file, not a folder; pass a folder for the restored PNGs")
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise MirlError(f"--out {out}: cannot create it, {probe} is a file; pass another folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise MirlError(f"--out {out}: {'it' if probe == out else probe} is not writable; pass a folder you can write to")


def _identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing path (same file under any spelling, case or link), else None."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_outputs_spare_inputs(pairs: Sequence[tuple[Path, Path]], inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> None:
    """Refuse any planned output that would overwrite an input, land inside an input folder, or land in
    the folder of an input file (a :class:`MirlError` naming both), so the originals are never touched
    and a rerun never restores its own outputs."""
    folders = {_identity(Path(p)): Path(p) for p in inputs if Path(p).is_dir()}
    files = {_identity(src): src for src, _ in pairs}
    homes = {_identity(src.parent): src for src, _ in pairs}
    out = Path(out_dir)
    for ancestor in (out.resolve(), *out.resolve().parents):
        folder = folders.get(_identity(ancestor))
        if folder is not None:
            raise MirlError(f"--out {out} is inside the input folder {folder}: the restored PNGs would replace or mix with the "
                            "originals, and a rerun would restore its own outputs; pass an output folder outside it")
    for src, rel in pairs:
        target = out / rel
        key = _identity(target)
        if key is not None and key in files:
            raise MirlError(f"--out {out} would write {target} over the input {files[key]}; "
                            "pass an output folder that holds no input")
    for parent in sorted({(out / rel).parent for _, rel in pairs}):
        key = _identity(parent)
        if key is not None and key in homes:
            raise MirlError(f"--out {out} would write restored PNGs into {parent}, beside the input {homes[key]}, mixing "
                            "restored and original images (and overwriting any of the same name); pass a separate output folder")
        for ancestor in (parent.resolve(), *parent.resolve().parents):
            key = _identity(ancestor)
            if key is not None and key in folders:
                raise MirlError(f"--out {out} would write into {parent}, inside the input folder {folders[key]}, over or "
                                "beside the originals; pass an output folder outside it")


def check_no_existing_outputs(pairs: Sequence[tuple[Path, Path]], out_dir: str | os.PathLike) -> None:
    """Refuse outputs that already exist (a :class:`MirlError` naming the first and the count)."""
    existing = [Path(out_dir) / rel for _, rel in pairs if (Path(out_dir) / rel).is_file()]
    if existing:
        more = f" and {len(existing) - 1} other output(s)" if len(existing) > 1 else ""
        raise MirlError(f"{existing[0]}{more} already exist(s) and would be replaced; pass --overwrite to replace "
                        "them, or another --out")


def plan_restore(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Check every setting and path before any work (the model need not be loaded yet).

    Returns :func:`collect_inputs`'s ``(pairs, skipped)``; raises :class:`MirlError` for bad
    ``tile`` / ``overlap``, an unusable ``out_dir``, an output that would touch an input, or
    (unless ``overwrite``) an output file that already exists.
    """
    check_tiling(tile, overlap)
    check_out_dir(out_dir)
    pairs, skipped = collect_inputs(inputs, skip_bad)
    check_outputs_spare_inputs(pairs, inputs, out_dir)
    if not overwrite:
        check_no_existing_outputs(pairs, out_dir)
    return pairs, skipped


def restore_files(
    model: nn.Module,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    skip_bad: bool = False,
    progress: bool = True,
    precision: str = "fp32",
    warn_skipped: bool = True,
    overwrite: bool = False,
    max_pixels: int | None = None,
) -> RestoreSummary:
    """Restore every image in ``inputs`` (files or folders) into ``out_dir`` as PNG, atomically.

    Settings and paths are checked first (:func:`plan_restore`): an output never overwrites an
    input nor lands inside an input folder or beside an input file, and replaces an existing file
    only with ``overwrite``. Images above ``max_pixels`` pixels (default: Pillow's decompression-bomb
    limit, :data:`mirl.data.imageio.MAX_PIXELS`; 0: none) are bad inputs. Every input is decoded before
    any restoration starts, so a corrupt file stops the run early (or, with ``skip_bad``, is
    skipped, counted in ``skipped`` and, with ``warn_skipped``, warned about). Grayscale inputs are
    written back as grayscale, RGBA inputs keep their alpha, 16-bit inputs are written as 8-bit,
    EXIF-rotated inputs are written upright (all noted).

    Example:
        >>> summary = restore_files(model, ["photos/"], "restored/")  # doctest: +SKIP
    """
    import warnings

    from tqdm.auto import tqdm

    from mirl.data.imageio import MAX_PIXELS, BadImageError, read_alpha, read_image, to_tensor, to_uint8, write_image

    pairs, skipped = plan_restore(inputs, out_dir, tile, overlap, skip_bad, overwrite)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    summary = RestoreSummary(skipped=list(skipped))
    good: list[tuple[Path, Path]] = []
    for src, rel in tqdm(pairs, desc="checking", unit="img", disable=not progress, leave=False):
        try:
            read_image(src, limit)
            good.append((src, rel))
        except BadImageError as exc:
            if not skip_bad:
                raise
            summary.skipped.append((str(src), exc.reason))
    if warn_skipped:
        for path, reason in summary.skipped:
            warnings.warn(f"skipped {path}: {reason}", stacklevel=2)
    if not good:
        raise MirlError("no image to restore" + (f" ({len(summary.skipped)} skipped as bad)" if summary.skipped else ""))
    out_dir = Path(out_dir)
    bar = tqdm(good, desc="restore", unit="img", disable=not progress)
    for src, rel in bar:
        arr, notes = read_image(src, limit)
        for note in notes:
            summary.notes.append((str(src), note))
            bar.write(f"note: {src}: {note}")
        restored = to_uint8(restore_image(model, to_tensor(arr), tile=tile, overlap=overlap, progress=progress, precision=precision))
        grayscale = any("grayscale" in n for n in notes if not n.startswith("decoder warning"))
        alpha = read_alpha(src, limit)
        if grayscale:
            from PIL import Image

            restored = np.asarray(Image.fromarray(restored).convert("L"))
            if alpha is not None:
                restored = np.dstack([np.repeat(restored[:, :, None], 3, axis=2), alpha])
        elif alpha is not None:
            restored = np.dstack([restored, alpha])
        target = out_dir / rel
        try:
            write_image(target, restored)
        except OSError as exc:
            raise MirlError(f"{target}: cannot write the restored image ({exc.strerror or exc}); "
                            f"{len(summary.written)} image(s) were written before it; check --out") from None
        summary.written.append(str(target))
    return summary


__all__ = [
    "PRECISIONS",
    "RestoreSummary",
    "check_no_existing_outputs",
    "check_out_dir",
    "check_outputs_spare_inputs",
    "check_tiling",
    "collect_inputs",
    "plan_restore",
    "restore_files",
    "restore_image",
    "tile_starts",
]
