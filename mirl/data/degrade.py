"""Degradations: Gaussian noise (exactly as MIR-L), rain streaks, haze, social-network JPEG upload.

Every function is pure in (image, parameters, seed): it takes a uint8 RGB array ``[H, W, 3]``, never
touches a global random state, and returns ``(degraded_uint8, params)`` where ``params`` records
everything it drew. The same seed gives the same bytes. Recipes: ``docs/data.md``.

Example:
    >>> import numpy as np
    >>> img = np.full((32, 32, 3), 128, np.uint8)
    >>> noisy, params = add_gaussian_noise(img, sigma=25, seed=0)
    >>> params["sigma"], noisy.dtype
    (25, dtype('uint8'))
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, Sequence

import numpy as np

SeedLike = int | Sequence[int]


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any printable parts (names, sigmas, seeds), same on every machine.

    Example:
        >>> derive_seed("kodim23", 25, 0) == derive_seed("kodim23", 25, 0)
        True
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _rng(seed: SeedLike) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB array [H, W, 3], got {img.dtype} {img.shape}")
    return img


# --------------------------------------------------------------------------------------------- noise
def add_gaussian_noise(img: np.ndarray, sigma: float, seed: SeedLike) -> tuple[np.ndarray, dict]:
    """MIR-L/PromptIR noise: ``clip(x + randn * sigma, 0, 255).astype(uint8)`` (truncation, no rounding)."""
    img = _check(img)
    noise = _rng(seed).standard_normal(img.shape) * float(sigma)
    out = np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    return out, {"kind": "gaussian_noise", "sigma": sigma}


# ---------------------------------------------------------------------------------------------- rain
def _line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised anti-aliased line of ``length`` px at ``angle_deg`` from vertical."""
    size = length + 2 + (length % 2 == 0)
    k = np.zeros((size, size), np.float64)
    c = size // 2
    theta = np.deg2rad(angle_deg)
    dy, dx = np.cos(theta), np.sin(theta)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        y, x = c + t * dy, c + t * dx
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - y0, x - x0
        for yy, xx, w in ((y0, x0, (1 - fy) * (1 - fx)), (y0 + 1, x0, fy * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx), (y0 + 1, x0 + 1, fy * fx)):
            if 0 <= yy < size and 0 <= xx < size:
                k[yy, xx] += w
    return k / k.sum()


def rain_layer(shape: tuple[int, int], seed: SeedLike, heavy: bool = False) -> tuple[np.ndarray, dict]:
    """A streak layer ``S`` in [0, 1] of ``shape`` (H, W) and its parameters."""
    from scipy.ndimage import gaussian_filter
    from scipy.signal import fftconvolve

    rng = _rng(seed)
    h, w = shape
    n_angles = int(rng.integers(3, 6)) if heavy else 1
    base_angle = float(rng.uniform(-15, 15))
    angles = [base_angle] if not heavy else [float(base_angle + rng.uniform(-10, 10)) for _ in range(n_angles)]
    layer = np.zeros(shape, np.float64)
    streaks = []
    for angle in angles:
        density = float(rng.uniform(0.010, 0.020) / n_angles * 1.5) if heavy else float(rng.uniform(0.003, 0.008))
        length = int(rng.integers(30, 56)) if heavy else int(rng.integers(15, 36))
        seeds = (rng.random(shape) < density) * rng.uniform(0.5, 1.0, size=shape)
        streak = fftconvolve(seeds, _line_kernel(length, angle), mode="same")
        layer = np.maximum(layer, np.clip(streak, 0, None))
        streaks.append({"angle_deg": round(angle, 3), "density": round(density, 5), "length_px": length})
    blur = 0.7
    layer = gaussian_filter(layer, blur)
    peak = float(rng.uniform(0.6, 0.9))
    layer = layer / max(layer.max(), 1e-12) * peak
    return layer, {"kind": "rain_heavy" if heavy else "rain_light", "streaks": streaks, "blur_sigma": blur, "peak": round(peak, 4)}


def add_rain(img: np.ndarray, seed: SeedLike, heavy: bool = False) -> tuple[np.ndarray, dict]:
    """Rain streaks screen-blended: ``1 - (1 - B)(1 - S)``. Light = Rain100L-like, one angle;
    heavy = 3-5 angles, denser and longer streaks."""
    img = _check(img)
    layer, params = rain_layer(img.shape[:2], seed, heavy)
    b = img.astype(np.float64) / 255.0
    out = 1.0 - (1.0 - b) * (1.0 - layer[:, :, None])
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8), params


# ---------------------------------------------------------------------------------------------- haze
HAZE_AIRLIGHTS: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95, 1.0)
HAZE_BETAS: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2, 1.6, 2.0, 2.5)


def pseudo_depth(shape: tuple[int, int], seed: SeedLike) -> np.ndarray:
    """Smooth pseudo-depth in [0, 1]: far (1) at the top, near (0) at the bottom, plus
    low-frequency noise (a 6x6 random grid upsampled bicubically). Used when no true depth is known."""
    from scipy.ndimage import zoom

    h, w = shape
    rng = _rng(seed)
    ramp = np.linspace(1.0, 0.0, h)[:, None] * np.ones((1, w))
    grid = rng.standard_normal((6, 6))
    noise = zoom(grid, (h / 6.0, w / 6.0), order=3, mode="nearest", grid_mode=True)[:h, :w]
    if noise.shape != (h, w):  # zoom rounding: pad by edge values
        noise = np.pad(noise, ((0, h - noise.shape[0]), (0, w - noise.shape[1])), mode="edge")
    noise = (noise - noise.mean()) / max(noise.std(), 1e-12)
    depth = ramp + 0.15 * noise
    depth = (depth - depth.min()) / max(depth.max() - depth.min(), 1e-12)
    return depth.astype(np.float32)


def add_haze(
    img: np.ndarray,
    seed: SeedLike,
    depth: np.ndarray | None = None,
    airlight: float | None = None,
    beta: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Atmospheric scattering ``I = J t + A (1 - t)``, ``t = exp(-beta d)`` with ``d`` in [0, 1].

    ``depth`` defaults to :func:`pseudo_depth`; ``airlight`` (A) from ``HAZE_AIRLIGHTS`` and ``beta``
    from ``HAZE_BETAS`` are drawn from the seed unless given. Both are in the returned params.
    """
    img = _check(img)
    rng = _rng(seed)
    a = float(airlight if airlight is not None else rng.choice(HAZE_AIRLIGHTS))
    b = float(beta if beta is not None else rng.choice(HAZE_BETAS))
    source = "given"
    if depth is None:
        depth, source = pseudo_depth(img.shape[:2], derive_seed("depth", *np.atleast_1d(seed))), "pseudo"
    depth = np.asarray(depth, np.float64)
    if depth.shape != img.shape[:2]:
        raise ValueError(f"depth shape {depth.shape} does not match image {img.shape[:2]}")
    t = np.exp(-b * depth)[:, :, None]
    out = img.astype(np.float64) / 255.0 * t + a * (1.0 - t)
    out = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
    return out, {"kind": "haze", "airlight": a, "beta": b, "depth": source}


# ---------------------------------------------------------------------------------------------- jpeg
UPLOAD_SIDES: tuple[int, ...] = (1080, 1440, 2048)


def upload_resize(img: np.ndarray, seed: SeedLike) -> tuple[np.ndarray, dict]:
    """The resize step of a social-network upload: longest side to one of ``UPLOAD_SIDES`` below
    the current one, or x U(0.5, 1) for images no larger than 1080 px."""
    from PIL import Image

    img = _check(img)
    rng = _rng(seed)
    h, w = img.shape[:2]
    longest = max(h, w)
    smaller = [s for s in UPLOAD_SIDES if s < longest]
    scale = float(rng.choice(smaller)) / longest if smaller else float(rng.uniform(0.5, 1.0))
    nh, nw = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
    out = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC)) if (nh, nw) != (h, w) else img.copy()
    return out, {"scale": round(scale, 6), "size": [nh, nw]}


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode to JPEG (4:2:0 chroma subsampling) at ``quality`` in memory and decode."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_check(img)).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy()


def social_upload(
    img: np.ndarray, seed: SeedLike, resize: bool = True, second_pass_prob: float = 0.5
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A social-network upload chain: resize, JPEG q U(70, 90) 4:2:0, optional re-share q U(60, 85).

    Returns ``(degraded, clean_target, params)``: the target is the resized clean image (the
    restoration target at the size the network sees), the same as ``img`` when ``resize=False``.
    """
    img = _check(img)
    rng = _rng(seed)
    params: dict[str, Any] = {"kind": "jpeg_upload"}
    clean = img
    if resize:
        clean, params["resize"] = upload_resize(img, int(rng.integers(2**62)))
    q1 = int(rng.integers(70, 91))
    out = jpeg_roundtrip(clean, q1)
    params["qualities"] = [q1]
    if rng.random() < second_pass_prob:
        q2 = int(rng.integers(60, 86))
        out = jpeg_roundtrip(out, q2)
        params["qualities"].append(q2)
    params["subsampling"] = "4:2:0"
    return out, clean, params


__all__ = [
    "HAZE_AIRLIGHTS",
    "HAZE_BETAS",
    "UPLOAD_SIDES",
    "add_gaussian_noise",
    "add_haze",
    "add_rain",
    "derive_seed",
    "jpeg_roundtrip",
    "pseudo_depth",
    "rain_layer",
    "social_upload",
    "upload_resize",
]
