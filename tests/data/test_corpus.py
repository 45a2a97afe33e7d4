"""The built-in corpus: fixed split, file-path discovery, missing packages reported, no imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mirl.data import corpus
from mirl.data.corpus import PHOTOS, TEST_NAMES, VAL_NAMES, corpus_photos, unavailable_photos
from mirl.errors import MirlError


def test_fixed_split_and_names():
    assert len(PHOTOS) == 15
    assert set(TEST_NAMES) == {"kodim23", "monarch", "barbara", "china"}
    assert {p.name for p in PHOTOS if p.split == "test"} == set(TEST_NAMES)
    # issue 31: two former training photos hold the recipe's validation; the test photos stay as they were
    assert {p.name for p in PHOTOS if p.split == "val"} == set(VAL_NAMES) == {"chelsea", "flower"}
    assert sum(p.split == "train" for p in PHOTOS) == 9
    assert all("_" not in p.name for p in PHOTOS)  # names go into X_A_beta_hazy file names
    assert len({p.name for p in PHOTOS}) == 15


def test_available_photos_are_readable_rgb():
    photos = corpus_photos("all")
    assert photos, "no corpus photo found: is scikit-image installed?"
    img = corpus.load_photo(photos[0])
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert {p.name for split in ("train", "val", "test") for p in corpus_photos(split)} == {p.name for p in photos}


def test_missing_package_is_reported_and_rest_used(monkeypatch):
    real = corpus.package_dir
    monkeypatch.setattr(corpus, "package_dir", lambda pkg: None if pkg == "sporco" else real(pkg))
    names = {p.name for p in corpus_photos("all")}
    assert not names & {"kodim23", "monarch", "sail", "tulips", "barbara"}
    missing = {p.name: why for p, why in unavailable_photos()}
    assert {"kodim23", "monarch", "sail", "tulips", "barbara"} <= set(missing)
    assert "sporco" in missing["kodim23"] and "not installed" in missing["kodim23"]
    assert [p.name for p in corpus_photos("test")] == ["china"] or "china" not in missing
    with pytest.raises(MirlError, match="kodim23"):
        corpus.load_photo(next(p for p in PHOTOS if p.name == "kodim23"))


def test_unknown_split():
    with pytest.raises(MirlError, match="valid"):
        corpus_photos("validation")


def test_listing_imports_none_of_the_photo_packages():
    code = (
        "import sys; from mirl.data.corpus import corpus_photos, unavailable_photos; "
        "corpus_photos('all'); unavailable_photos(); "
        "print(sorted(m for m in ('sporco','mahotas','imgaug','skimage','sklearn','matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_motorcycle_depth_matches_photo():
    depth = corpus.motorcycle_depth()
    photo = next((p for p in corpus_photos("all") if p.name == "motorcycle"), None)
    if depth is None or photo is None:
        pytest.skip("scikit-image photos not installed")
    assert depth.shape == corpus.load_photo(photo).shape[:2]
    assert depth.min() >= 0 and depth.max() <= 1 and np.isfinite(depth).all()
