"""`mirl make-dataset`: the made layout, its determinism, idempotence and atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mirl.cli import main
from mirl.data import DEMO_REPEATS
from mirl.data import make_dataset as mk
from mirl.data.corpus import corpus_photos, load_photo
from mirl.data.datasets import TestDataset, TrainDataset
from mirl.data.degrade import add_rain, derive_seed
from mirl.data.imageio import read_image
from mirl.errors import MirlError


# A few photos keep the test quick; the full corpus goes through the same code path.
SUBSET = ["astronaut", "motorcycle", "chelsea", "kodim23", "china"]
ARGS = ["--max-test-side", "64", "--photos", *SUBSET, "--no-progress"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("made") / "ds"
    assert main(["make-dataset", "--out", str(out), *ARGS]) == 0
    return out


def test_layout_and_manifest(made):
    manifest = json.loads((made / mk.MANIFEST).read_text())
    train = [p.name for p in corpus_photos("train") if p.name in SUBSET]
    assert manifest["split"] == {"train": train, "test": [p.name for p in corpus_photos("test") if p.name in SUBSET]}
    assert manifest["split"]["test"] == ["china", "kodim23"] and len(train) == 3
    assert sorted(p.name for p in (made / "train/denoise/Corpus").iterdir()) == sorted(f"{n}.png" for n in train)
    assert len(list((made / "train/derain/Rain100L/input").glob("*_rainy.png"))) == 3 * len(train)
    hazy = sorted((made / "test/dehaze/SOTS/input").glob("*_hazy.png"))
    assert hazy and all(len(p.stem.split("_")) == 4 for p in hazy)  # id_A_beta_hazy
    assert manifest["recommended_repeats"] == DEMO_REPEATS
    recs = [r for r in manifest["files"] if r["task"] == "dehaze"]
    assert all("airlight" in r["params"] and "beta" in r["params"] for r in recs)
    assert any(r["params"]["depth"] == "middlebury_disparity" for r in recs if r["photo"] == "motorcycle")
    assert not list(made.parent.glob(".ds.tmp-*"))


def test_test_photos_cropped(made):
    for p in (made / "test/denoise/Corpus").iterdir():
        assert max(read_image(p)[0].shape[:2]) <= 64


def test_bytes_are_a_function_of_the_seed(made):
    photo = corpus_photos("train")[0]
    expected, _ = add_rain(load_photo(photo), derive_seed(0, "train", photo.name, "derain", 1))
    got = read_image(made / f"train/derain/Rain100L/input/{photo.name}-1_rainy.png")[0]
    assert np.array_equal(got, expected)


def test_loaders_serve_the_made_layout(made):
    ds = TrainDataset(made, ["all_in_one", "jpeg"], repeats=mk.recommended_repeats(made))
    assert len(ds) == sum(DEMO_REPEATS[t] * n for t, n in ds.counts.items())
    x, y, t = ds[len(ds) - 1]
    assert x.shape == (3, 64, 64) and t == 5
    for task in ("denoise_15", "derain", "dehaze", "jpeg"):
        item = TestDataset(made, task)[0]
        assert item["degraded"].shape == item["clean"].shape and item["clean"].shape[1] % 16 == 0


def test_idempotent_and_settings_checked(made, capsys):
    before = {p: p.stat().st_mtime_ns for p in made.rglob("*.png")}
    assert main(["make-dataset", "--out", str(made), *ARGS]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in made.rglob("*.png")}
    assert main(["make-dataset", "--out", str(made), "--seed", "1", *ARGS]) == 2
    assert "other settings" in capsys.readouterr().err


def test_atomic_on_failure(tmp_path, monkeypatch):
    calls = []

    def boom(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return []

    monkeypatch.setattr(mk, "_write_photo", boom)
    with pytest.raises(RuntimeError):
        mk.make_dataset(tmp_path / "ds", progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temp folder is left


def test_unknown_photo(tmp_path):
    with pytest.raises(MirlError, match="lena.*astronaut"):
        mk.make_dataset(tmp_path / "ds", photos=["lena"], progress=False)


def test_full_corpus_split_in_manifest_settings():
    photos = corpus_photos("all")
    assert mk._settings(0, None, photos)["photos"] == [p.name for p in photos]


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "mine.txt").write_text("x")
    with pytest.raises(mk.DatasetExistsError, match="not an empty folder"):
        mk.make_dataset(tmp_path / "ds", progress=False)
