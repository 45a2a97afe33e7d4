"""The gallery widget (mirl.reports.gallery_view) and the photo choice behind it (mirl.analysis.gallery)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import torch
from PIL import Image

from mirl.analysis.gallery import one_crop_per_photo, one_per_task, photo_of
from mirl.reports.gallery_view import gallery_browser, sample_page


def _sample(task: str, name: str, value: float = 0.5) -> dict:
    rng = np.random.default_rng(0)
    image = np.clip(value + 0.1 * rng.standard_normal((64, 48, 3)), 0, 1)
    return {"task": task, "name": name, "convention": "upstream",
            "panels": [{"label": "degraded input", "image": image, "psnr": 20.0},
                       {"label": "level 2", "image": image, "psnr": 27.456}, {"label": "clean", "image": image, "psnr": None}]}


def test_photos_of_the_built_in_crops_and_of_real_data_sets() -> None:
    assert photo_of("Corpus/barbara-r1c2") == photo_of("Rain100L/barbara-r0c0_rainy") == photo_of("SOTS/barbara-r1c1_1_1.6_hazy") == "barbara"
    assert photo_of("BSD68/test001") == "BSD68/test001"


def test_the_most_textured_crop_of_each_photo_is_chosen_from_the_clean_image() -> None:
    flat, busy = torch.full((3, 8, 8), 0.5), torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    items = [{"name": "a-r0c0", "clean": flat}, {"name": "a-r0c1", "clean": busy}, {"name": "b-r0c0", "clean": flat}]
    assert one_crop_per_photo(items) == [1, 2]


def test_the_summary_figure_takes_a_different_photo_per_task() -> None:
    samples = [_sample(t, f"{p}-r0c0") for t in ("derain", "dehaze", "denoise_25") for p in ("a", "b")]
    assert [(s["task"], s["name"]) for s in one_per_task(samples)] == [("derain", "a-r0c0"), ("dehaze", "b-r0c0"), ("denoise_25", "a-r0c0")]


def test_a_page_shows_every_panel_with_its_psnr_and_a_lossless_zoom() -> None:
    page = sample_page(_sample("derain", "Rain100L/a-r0c0_rainy"))
    assert page.count("data:image/jpeg") == 3 and page.count("data:image/png") == 3
    assert "27.46 dB" in page and "20.00 dB" in page and "<b>clean</b></td>" in page
    zoom = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)[1]
    crop = np.asarray(Image.open(io.BytesIO(base64.b64decode(zoom))))
    assert crop.shape == (12, 12, 3)  # a quarter of the short side (48 px), at its own pixels


def test_tasks_with_the_same_photos_share_a_photo_menu() -> None:
    shared = [_sample(t, f"{d}/{p}-r0c0{suffix}") for t, d, suffix in (("derain", "Rain100L", "_rainy"), ("dehaze", "SOTS", "_1_2_hazy"))
              for p in ("barbara", "china")]
    box = gallery_browser(shared)
    menus = box.children[0].children
    assert [m.description for m in menus] == ["task", "photo"]
    assert [label for label, _ in menus[1].options] == ["barbara", "china"]
    different = [_sample("derain", "Rain100L/1_rainy"), _sample("dehaze", "SOTS/7_hazy")]
    menus = gallery_browser(different).children[0].children
    assert [m.description for m in menus] == ["image"] and len(menus[0].options) == 2
