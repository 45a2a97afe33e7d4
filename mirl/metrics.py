"""PSNR and SSIM under a named convention. Numbers are comparable only within one convention.

``upstream`` (default; MIR-L and PromptIR): scikit-image on RGB floats in [0, 1], ``data_range=1``,
SSIM with the default 7x7 uniform window over channels (``channel_axis=-1``), no border crop.

``y`` (BasicSR / MATLAB): the BT.601 luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` of [0, 1]
inputs (on the 0-255 scale), optional ``crop_border``, SSIM with an 11x11 Gaussian window (sigma 1.5),
``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, mean over the valid region.

Inputs: numpy ``[H, W, 3]`` floats in [0, 1], or torch ``[3, H, W]`` / ``[B, 3, H, W]`` tensors
(a batch gives the mean over its images). Values outside [0, 1] are clipped first, as upstream.

Example:
    >>> import numpy as np
    >>> a = np.zeros((16, 16, 3)); b = a + 0.1
    >>> round(psnr(b, a), 6)
    20.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONVENTIONS: dict[str, str] = {
    "upstream": "RGB in [0,1], data_range 1, skimage SSIM 7x7 uniform window (MIR-L/PromptIR)",
    "y": "BT.601 Y channel (0-255), optional border crop, 11x11 Gaussian SSIM sigma 1.5 (BasicSR/MATLAB)",
}


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        from mirl.errors import MirlError

        raise MirlError(f"unknown metric convention {convention!r}; valid: {', '.join(CONVENTIONS)}")


def _as_hwc_list(x: Any) -> list[np.ndarray]:
    """Torch CHW/BCHW or numpy HWC/BHWC -> list of float64 HWC arrays clipped to [0, 1]."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            t = x.detach().to("cpu", torch.float64)
            if t.dim() == 3:
                t = t[None]
            if t.dim() != 4:
                raise ValueError(f"expected a [3,H,W] or [B,3,H,W] tensor, got shape {tuple(x.shape)}")
            return [np.clip(a.transpose(1, 2, 0), 0, 1) for a in t.numpy()]
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"expected an [H,W,C] array, got shape {np.shape(x)}")
    return [np.clip(i, 0, 1) for i in a]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0-255 scale from RGB ``[H, W, 3]`` in [0, 1] (MATLAB ``rgb2ycbcr``)."""
    return 16.0 + img[..., 0] * 65.481 + img[..., 1] * 128.553 + img[..., 2] * 24.966


def _pairs(restored: Any, clean: Any, convention: str, crop_border: int):
    _check_convention(convention)
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    xs, ys = _as_hwc_list(restored), _as_hwc_list(clean)
    if len(xs) != len(ys) or any(x.shape != y.shape for x, y in zip(xs, ys)):
        raise ValueError(f"restored and clean differ in shape: {[x.shape for x in xs]} vs {[y.shape for y in ys]}")
    for x, y in zip(xs, ys):
        if convention == "y":
            x, y = rgb_to_y(x), rgb_to_y(y)
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
        raise ValueError(f"the y convention's SSIM needs images of at least 11x11 after cropping, got {x.shape}")
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


__all__ = ["CONVENTIONS", "psnr", "rgb_to_y", "ssim"]
