"""PSNR/SSIM under both conventions, against scikit-image and values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mirl.errors import MirlError
from mirl.metrics import CONVENTIONS, psnr, rgb_to_y, ssim


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
    assert psnr(restored + 5.0, clean) == pytest.approx(psnr(np.ones_like(clean), clean))  # clipped to [0, 1] first
    with pytest.raises(MirlError, match="upstream"):
        psnr(restored, clean, convention="matlab")
    with pytest.raises(ValueError, match="shape"):
        psnr(restored[:-1], clean)
