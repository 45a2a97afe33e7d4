"""PSNR/SSIM under both conventions, against scikit-image and values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mirl.errors import MirlError
from mirl.scoring.metrics import CONVENTIONS, RANGE_TOLERANCE, MetricInputError, psnr, rgb_to_y, ssim


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    clean = rng.random((40, 48, 3))
    restored = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1)
    return restored, clean


def test_conventions_named():
    assert set(CONVENTIONS) == {"upstream", "y"}


def test_upstream_matches_skimage(pair):
    restored, clean = pair
    assert psnr(restored, clean) == pytest.approx(peak_signal_noise_ratio(clean, restored, data_range=1), abs=1e-10)
    assert ssim(restored, clean) == pytest.approx(structural_similarity(clean, restored, data_range=1, channel_axis=-1), abs=1e-10)


def test_hand_computed_psnr():
    clean = np.full((16, 16, 3), 0.5)
    assert psnr(clean + 0.1, clean) == pytest.approx(20.0)  # MSE 0.01
    dy = 0.1 * (65.481 + 128.553 + 24.966)
    assert psnr(clean + 0.1, clean, convention="y") == pytest.approx(10 * math.log10(255**2 / dy**2))
    assert psnr(clean, clean) == float("inf")


def test_hand_computed_ssim_constant_images():
    a, b = np.full((20, 20, 3), 0.5), np.full((20, 20, 3), 0.6)
    ya, yb = rgb_to_y(a[:1, :1])[0, 0], rgb_to_y(b[:1, :1])[0, 0]
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b, convention="y") == pytest.approx((2 * ya * yb + c1) / (ya**2 + yb**2 + c1))
    c1u = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.5 * 0.6 + c1u) / (0.25 + 0.36 + c1u))


def test_y_matches_skimage_gaussian_on_luma(pair):
    restored, clean = pair
    yr, yc = rgb_to_y(restored), rgb_to_y(clean)
    ref = structural_similarity(yc, yr, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(restored, clean, convention="y") == pytest.approx(ref, abs=1e-6)
    assert psnr(restored, clean, convention="y", crop_border=4) == pytest.approx(
        peak_signal_noise_ratio(yc[4:-4, 4:-4], yr[4:-4, 4:-4], data_range=255), abs=1e-10)


def test_torch_inputs_and_batches(pair):
    restored, clean = pair
    r, c = torch.from_numpy(restored.transpose(2, 0, 1)), torch.from_numpy(clean.transpose(2, 0, 1))
    assert psnr(r, c) == pytest.approx(psnr(restored, clean))
    assert ssim(r.float(), c.float(), convention="y") == pytest.approx(ssim(restored, clean, convention="y"), abs=1e-5)
    batch_r, batch_c = torch.stack([r, c]), torch.stack([c, c])
    assert ssim(batch_r, batch_c) == pytest.approx((ssim(r, c) + 1.0) / 2)


def test_clipping_and_errors(pair):
    restored, clean = pair
    nudged = restored.copy()
    nudged[0, 0] = [1.005, -0.005, 0.5]  # slightly outside [0, 1]: clipped first, as upstream
    clipped = np.clip(nudged, 0, 1)
    assert psnr(nudged, clean) == psnr(clipped, clean) and ssim(nudged, clean) == ssim(clipped, clean)
    with pytest.raises(MirlError, match="upstream"):
        psnr(restored, clean, convention="matlab")
    with pytest.raises(ValueError, match="shape"):
        psnr(restored[:-1], clean)


@pytest.fixture(scope="module")
def uint8_pair():
    rng = np.random.default_rng(3)
    clean = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    restored = np.clip(clean.astype(int) + rng.integers(-20, 21, clean.shape), 0, 255).astype(np.uint8)
    return restored, clean


@pytest.mark.parametrize("convention", ["upstream", "y"])
def test_integer_images_are_scaled_by_their_range(uint8_pair, convention):
    restored, clean = uint8_pair
    for metric in (psnr, ssim):
        ref = metric(restored / 255.0, clean / 255.0, convention)
        assert metric(restored, clean, convention) == pytest.approx(ref, abs=1e-12)
        wide_r, wide_c = restored.astype(np.uint16) * 257, clean.astype(np.uint16) * 257  # 16-bit: same image
        assert metric(wide_r, wide_c, convention) == pytest.approx(ref, abs=1e-12)
        tr, tc = (torch.from_numpy(a.transpose(2, 0, 1).copy()) for a in (restored, clean))
        assert metric(tr, tc, convention) == pytest.approx(ref, abs=1e-12)
        assert metric(tr, tc.double() / 255, convention) == pytest.approx(ref, abs=1e-12)  # mixed types
    assert psnr(restored, clean) > 26  # 16.3 dB when uint8 was clipped to [0, 1]


def test_torch_uint16_is_scaled(uint8_pair):
    restored, clean = uint8_pair
    tr, tc = (torch.from_numpy(a.astype(np.int32).transpose(2, 0, 1) * 257).to(torch.uint16) for a in (restored, clean))
    assert psnr(tr, tc) == pytest.approx(psnr(restored / 255.0, clean / 255.0), abs=1e-12)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_types_without_a_range_are_refused(uint8_pair, dtype):
    restored, clean = uint8_pair
    with pytest.raises(MirlError, match=f"restored: unsupported dtype {np.dtype(dtype).name}.*uint8"):
        psnr(restored.astype(dtype), clean)
    with pytest.raises(MirlError, match="clean: unsupported dtype int64"):
        ssim(torch.from_numpy(restored.transpose(2, 0, 1) / 255.0), torch.from_numpy(clean.astype(np.int64).transpose(2, 0, 1)))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_floats_outside_unit_range_are_refused(uint8_pair, metric):
    restored, clean = uint8_pair
    with pytest.raises(MirlError, match=r"restored: float values span \[0, 255\].*divide 0-255 images by 255"):
        metric(restored.astype(np.float64), clean.astype(np.float64))
    with pytest.raises(MirlError, match=r"clean: float values span \[-1"):
        metric(restored / 255.0, clean / 127.5 - 1.0)  # a [-1, 1] image
    edge = clean / 255.0
    edge[0, 0, 0] = 1 + RANGE_TOLERANCE * 1.5
    with pytest.raises(MetricInputError, match="clamp"):
        metric(torch.from_numpy(edge.transpose(2, 0, 1)), torch.from_numpy(clean.transpose(2, 0, 1) / 255.0))


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_an_error(pair, metric, bad):
    restored, clean = pair
    broken = restored.copy()
    broken[3, 4, 1] = bad
    with pytest.raises(MirlError, match="restored: 1 value.*NaN or infinite"):
        metric(broken, clean)
    with pytest.raises(MirlError, match="NaN or infinite"):
        metric(torch.from_numpy(clean.transpose(2, 0, 1)), torch.from_numpy(broken.transpose(2, 0, 1)).float(), "y")


def test_grey_images_under_both_conventions(pair):
    restored, clean = (a[..., 1] for a in pair)  # [H, W] grey
    mse = np.mean((restored - clean) ** 2)
    assert psnr(restored, clean) == pytest.approx(10 * math.log10(1 / mse))
    # y on grey: the channel itself on the 0-255 scale, as BasicSR's to_y_channel (not 16 + 219 v)
    assert psnr(restored, clean, "y") == pytest.approx(10 * math.log10(255**2 / (255**2 * mse)))
    ref = structural_similarity(clean * 255, restored * 255, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(restored, clean, "y") == pytest.approx(ref, abs=1e-6)
    torch_grey = [torch.from_numpy(a[None]) for a in (restored, clean)]  # [1, H, W]
    assert ssim(*torch_grey, convention="y") == pytest.approx(ssim(restored, clean, "y"))
    assert ssim(restored[..., None], clean[..., None]) == pytest.approx(ssim(restored, clean))
    with pytest.raises(MirlError, match="3 \\(RGB\\) or 1 \\(grey\\) channels"):
        psnr(np.dstack([restored, clean]), np.dstack([clean, clean]), "y")


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_crop_border_must_leave_pixels(pair, metric):
    restored, clean = pair  # 40 x 48
    for border in (20, 24, 100):
        with pytest.raises(MirlError, match=f"crop_border={border} leaves nothing of a 40x48 image.*19 at most"):
            metric(restored, clean, "y", crop_border=border)
    assert math.isfinite(psnr(restored, clean, "y", crop_border=19))
