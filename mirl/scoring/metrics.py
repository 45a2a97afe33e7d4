"""PSNR and SSIM under a named convention. Numbers are comparable only within one convention.

``upstream`` (default; MIR-L and PromptIR): scikit-image on RGB floats in [0, 1], ``data_range=1``,
SSIM with the default 7x7 uniform window over channels (``channel_axis=-1``), no border crop.

``y`` (BasicSR / MATLAB): the BT.601 luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` of [0, 1]
inputs (on the 0-255 scale), optional ``crop_border``, SSIM with an 11x11 Gaussian window (sigma 1.5),
``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, mean over the valid region.

Inputs: numpy ``[H, W, 3]`` (or ``[B, H, W, 3]``) arrays, or torch ``[3, H, W]`` / ``[B, 3, H, W]``
tensors (a batch gives the mean over its images); a single channel (grey: numpy ``[H, W]`` or
``[H, W, 1]``, torch ``[1, H, W]``) is allowed too. Values are checked before any score is made:

* floats must lie in [0, 1]; values at most :data:`RANGE_TOLERANCE` (0.01) outside are clipped, as
  upstream clips (rounding, low-precision outputs); anything further out (a 0-255 float image, a
  [-1, 1] image, an unclamped network output) is refused: divide by 255 or clamp first;
* integer images are scaled by their type's range: ``uint8`` / 255 and ``uint16`` / 65535, numpy
  and torch alike; other integer types (``int64``, ``bool``, ...) have no defined range and are
  refused;
* NaN or infinite values are refused: a non-finite network output is an error, never a score.

Grey under ``y``: as BasicSR's ``to_y_channel`` (and MATLAB practice), a single channel is used
as it is, on the 0-255 scale (``255 v``, not the luma ``16 + 219 v`` of the same image expanded
to RGB; the two differ by 20 log10(255/219) = 1.32 dB in PSNR). ``crop_border`` must leave at
least one pixel. Every refusal raises :class:`MetricInputError` (a ``MirlError`` and a
``ValueError``) naming the argument.

Example:
    >>> import numpy as np
    >>> a = np.zeros((16, 16, 3)); b = a + 0.1
    >>> round(psnr(b, a), 6)
    20.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mirl.errors import MirlError

CONVENTIONS: dict[str, str] = {
    "upstream": "RGB in [0,1], data_range 1, skimage SSIM 7x7 uniform window (MIR-L/PromptIR)",
    "y": "BT.601 Y channel (0-255), optional border crop, 11x11 Gaussian SSIM sigma 1.5 (BasicSR/MATLAB)",
}


def harm_warning(where: str, gain: float, evidence: str = "") -> str:
    """The one sentence for restored images that score below their degraded input (``gain`` < 0,
    dB), for every report and command; ``evidence`` adds an interval and n.

    Example:
        >>> harm_warning("derain", -1.234)
        'derain: the restored images score 1.23 dB below the degraded input'
    """
    return f"{where}: the restored images score {-gain:.2f} dB below the degraded input{f' {evidence}' if evidence else ''}"


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise MirlError(f"unknown metric convention {convention!r}; valid: {', '.join(CONVENTIONS)}")


RANGE_TOLERANCE = 0.01
"""How far float inputs may stray outside [0, 1] and still be clipped (as upstream) rather than refused."""

_INT_RANGES: dict[str, float] = {"uint8": 255.0, "uint16": 65535.0}


class MetricInputError(MirlError, ValueError):
    """An image given to :func:`psnr` / :func:`ssim` that has no honest score; the message says why."""


def _to_unit(a: np.ndarray, dtype_name: str, what: str) -> np.ndarray:
    """Scale an integer array by its type's range, or check a float one; float64 in [0, 1]."""
    if dtype_name in _INT_RANGES:
        return a.astype(np.float64) / _INT_RANGES[dtype_name]
    if not np.issubdtype(a.dtype, np.floating):
        raise MetricInputError(f"{what}: unsupported dtype {dtype_name}; pass floats in [0, 1] or uint8 / uint16 images")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise MetricInputError(f"{what}: {int(np.size(a) - np.isfinite(a).sum())} value(s) are NaN or infinite; "
                               "a non-finite image (e.g. a diverged network output) has no score")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise MetricInputError(f"{what}: float values span [{lo:.4g}, {hi:.4g}], outside [0, 1]; divide 0-255 images by 255, "
                               "or clamp network outputs to [0, 1] first")
    return np.clip(a, 0, 1)


def _as_hwc_list(x: Any, what: str = "image") -> list[np.ndarray]:
    """Torch CHW/BCHW or numpy HW/HWC/BHWC -> list of float64 HWC arrays in [0, 1] (see module doc)."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            t = x.detach().to("cpu")
            if t.dim() == 3:
                t = t[None]
            if t.dim() != 4:
                raise MetricInputError(f"{what}: expected a [3,H,W] or [B,3,H,W] tensor, got shape {tuple(x.shape)}")
            name = str(t.dtype).removeprefix("torch.")
            if name in _INT_RANGES:
                arr = t.to(torch.int64 if name == "uint16" else torch.uint8).numpy().astype(name)
            elif t.is_floating_point():
                arr = t.to(torch.float64).numpy()
                name = "float64"
            else:
                arr = t.numpy() if name != "bool" else t.to(torch.uint8).numpy()
            return _check_channels([a.transpose(1, 2, 0) for a in _to_unit(arr, name, what)], what)
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(x)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise MetricInputError(f"{what}: expected an [H,W,C] array, got shape {np.shape(x)}")
    return _check_channels(list(_to_unit(a, a.dtype.name, what)), what)


def _check_channels(images: list[np.ndarray], what: str) -> list[np.ndarray]:
    for img in images:
        if img.shape[-1] not in (1, 3):
            raise MetricInputError(f"{what}: expected 3 (RGB) or 1 (grey) channels, got an image of shape {img.shape} "
                                   "(numpy arrays are [H, W, C], torch tensors [C, H, W])")
    return images


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0-255 scale from RGB ``[H, W, 3]`` in [0, 1] (MATLAB ``rgb2ycbcr``)."""
    return 16.0 + img[..., 0] * 65.481 + img[..., 1] * 128.553 + img[..., 2] * 24.966


def _pairs(restored: Any, clean: Any, convention: str, crop_border: int):
    _check_convention(convention)
    if crop_border < 0:
        raise MetricInputError(f"crop_border must be >= 0, got {crop_border}")
    xs, ys = _as_hwc_list(restored, "restored"), _as_hwc_list(clean, "clean")
    if len(xs) != len(ys) or any(x.shape != y.shape for x, y in zip(xs, ys)):
        raise MetricInputError(f"restored and clean differ in shape: {[x.shape for x in xs]} vs {[y.shape for y in ys]}")
    for x, y in zip(xs, ys):
        if 2 * crop_border >= min(x.shape[:2]):
            raise MetricInputError(f"crop_border={crop_border} leaves nothing of a {x.shape[0]}x{x.shape[1]} image; "
                                   f"use less than half the shorter side ({(min(x.shape[:2]) - 1) // 2} at most)")
        if convention == "y":
            # grey: the channel itself on the 0-255 scale, as BasicSR's to_y_channel (module doc)
            x, y = (rgb_to_y(x), rgb_to_y(y)) if x.shape[-1] == 3 else (x[..., 0] * 255.0, y[..., 0] * 255.0)
        if crop_border:
            x, y = x[crop_border:-crop_border, crop_border:-crop_border], y[crop_border:-crop_border, crop_border:-crop_border]
        yield x, y


def psnr(restored: Any, clean: Any, convention: str = "upstream", crop_border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images); mean over a batch.

    Example:
        >>> import torch
        >>> psnr(torch.full((3, 8, 8), 0.5), torch.full((3, 8, 8), 0.6), convention="y") > 0
        True
    """
    values = []
    for x, y in _pairs(restored, clean, convention, crop_border):
        peak = 255.0 if convention == "y" else 1.0
        mse = float(np.mean((x - y) ** 2))
        values.append(float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse))
    return float(np.mean(values))


def _ssim_y(x: np.ndarray, y: np.ndarray) -> float:
    """BasicSR's ``_ssim`` on a 0-255 single channel: 11x11 Gaussian (sigma 1.5), valid region."""
    from scipy.ndimage import correlate

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    window = np.outer(g, g)

    def filt(a: np.ndarray) -> np.ndarray:
        return correlate(a, window, mode="reflect")[5:-5, 5:-5]

    if min(x.shape) < 11:
        raise MetricInputError(f"the y convention's SSIM needs images of at least 11x11 after cropping, got {x.shape}")
    mu1, mu2 = filt(x), filt(y)
    s11, s22, s12 = filt(x * x) - mu1**2, filt(y * y) - mu2**2, filt(x * y) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(ssim_map.mean())


def ssim(restored: Any, clean: Any, convention: str = "upstream", crop_border: int = 0) -> float:
    """Structural similarity under ``convention``; mean over a batch.

    Example:
        >>> import numpy as np
        >>> ssim(np.ones((16, 16, 3)) * 0.5, np.ones((16, 16, 3)) * 0.5)
        1.0
    """
    values = []
    for x, y in _pairs(restored, clean, convention, crop_border):
        if convention == "y":
            values.append(_ssim_y(x, y))
        else:
            from skimage.metrics import structural_similarity

            values.append(float(structural_similarity(y, x, data_range=1.0, channel_axis=-1)))
    return float(np.mean(values))


__all__ = ["CONVENTIONS", "MetricInputError", "RANGE_TOLERANCE", "psnr", "rgb_to_y", "ssim"]
