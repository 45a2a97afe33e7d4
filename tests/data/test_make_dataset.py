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
    assert manifest["split"] == {"train": train, "val": ["chelsea"], "test": [p.name for p in corpus_photos("test") if p.name in SUBSET]}
    assert manifest["split"]["test"] == ["china", "kodim23"] and len(train) == 2 and "chelsea" not in train
    assert sorted(p.name for p in (made / "train/denoise/Corpus").iterdir()) == sorted(f"{n}.png" for n in train)
    assert len(list((made / "train/derain/Rain100L/input").glob("*_rainy.png"))) == 3 * len(train)
    hazy = sorted((made / "test/dehaze/SOTS/input").glob("*_hazy.png"))
    assert hazy and all(len(p.stem.split("_")) == 4 for p in hazy)  # id_A_beta_hazy
    assert manifest["recommended_repeats"] == DEMO_REPEATS
    recs = [r for r in manifest["files"] if r["task"] == "dehaze"]
    assert all("airlight" in r["params"] and "beta" in r["params"] for r in recs)
    assert any(r["params"]["depth"] == "middlebury_disparity" for r in recs if r["photo"] == "motorcycle")
    assert not list(made.parent.glob(".ds.tmp-*"))


def test_the_validation_photos_are_laid_out_and_made_as_test_photos(made):
    """val/ holds the validation photos (two former training photos), one degraded image per crop,
    in the test layout; no test photo is in it, and TestDataset scores it with split="val"."""
    from mirl.data.datasets import TestDataset

    manifest = json.loads((made / mk.MANIFEST).read_text())
    crops = sorted(p.stem for p in (made / "val/denoise/Corpus").iterdir())
    assert crops and all(c.startswith("chelsea-r") for c in crops)
    assert sorted(p.stem for p in (made / "val/derain/Rain100L/input").iterdir()) == [f"{c}_rainy" for c in crops]
    assert len(list((made / "val/dehaze/SOTS/input").glob("*_hazy.png"))) == len(crops)
    assert manifest["counts"]["val"]["derain"] == len(crops)
    assert not list((made / "train").rglob("chelsea*"))
    ds = TestDataset(made, "derain", split="val")
    assert len(ds) == len(crops) and ds[0]["name"].startswith("Rain100L/chelsea")
    assert all("chelsea" not in s.name for s in TestDataset(made, "derain").samples)


def test_val_is_refused_in_one_line_where_a_data_set_has_none(tmp_path):
    from mirl.data.datasets import DatasetError, TestDataset

    (tmp_path / "test").mkdir()
    with pytest.raises(DatasetError, match="val does not exist: a validation split is written by mirl make-dataset"):
        TestDataset(tmp_path, "derain", split="val")


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


# ------------------------------------------------------------------ test crops (several per photo)
def _test_names(made: Path, folder: str, suffix: str) -> list[str]:
    return sorted(p.name[: -len(suffix)] for p in (made / folder).glob(f"*{suffix}"))


def test_grid_of_test_crops_per_photo(made):
    test_photos = [p.name for p in corpus_photos("test") if p.name in SUBSET]
    expected = sorted(f"{p}-r{i}c{j}" for p in test_photos for i in range(mk.TEST_GRID) for j in range(mk.TEST_GRID))
    assert _test_names(made, "test/denoise/Corpus", ".png") == expected
    assert _test_names(made, "test/derain/Rain100L/input", "_rainy.png") == expected
    assert _test_names(made, "test/derain/Rain100L/target", "_gt.png") == expected
    assert _test_names(made, "test/dehaze/SOTS/target", "_gt.png") == expected
    assert sorted(p.name.split("_")[0] for p in (made / "test/dehaze/SOTS/input").glob("*_hazy.png")) == expected
    manifest = json.loads((made / mk.MANIFEST).read_text())
    assert manifest["counts"]["test"] == {t: len(expected) for t in ("denoise", "derain", "dehaze", "jpeg")}
    for task in ("denoise_15", "derain", "dehaze", "jpeg"):
        assert len(TestDataset(made, task)) == len(expected)


def test_test_crops_are_distinct_regions_of_the_photo(made):
    manifest = json.loads((made / mk.MANIFEST).read_text())
    recs = [r for r in manifest["files"] if r["task"] == "denoise" and r["clean"].startswith("test/")]
    assert len(recs) == 2 * mk.TEST_GRID**2
    for photo in {r["photo"] for r in recs}:
        full = load_photo(next(p for p in corpus_photos("test") if p.name == photo))
        mine = [r for r in recs if r["photo"] == photo]
        boxes = [tuple(r["crop"]) for r in mine]
        for r, (t, l, h, w) in zip(mine, boxes):
            assert (h, w) == (64, 64)
            assert np.array_equal(read_image(made / r["clean"])[0], full[t : t + h, l : l + w])
        for a in range(len(boxes)):  # pairwise disjoint rectangles
            for b in range(a + 1, len(boxes)):
                (t1, l1, h1, w1), (t2, l2, h2, w2) = boxes[a], boxes[b]
                assert t1 + h1 <= t2 or t2 + h2 <= t1 or l1 + w1 <= l2 or l2 + w2 <= l1
        pixels = [read_image(made / r["clean"])[0] for r in mine]
        assert all(not np.array_equal(pixels[a], pixels[b]) for a in range(len(pixels)) for b in range(a + 1, len(pixels)))


def test_test_crops_degraded_independently(made):
    manifest = json.loads((made / mk.MANIFEST).read_text())
    rain = [r for r in manifest["files"] if r["task"] == "derain" and r["input"].startswith("test/")]
    # each crop has its own rain draw: the rain drawn over the whole photo with the crop's seed, then cropped
    for r in rain[:2]:
        full = load_photo(next(p for p in corpus_photos("test") if p.name == r["photo"]))
        expected, params = add_rain(full, derive_seed(0, "test", r["image"], "derain", 0))
        t, l, h, w = r["crop"]
        assert np.array_equal(read_image(made / r["input"])[0], expected[t : t + h, l : l + w])
        assert params == r["params"]
    assert len({json.dumps(r["params"], sort_keys=True) for r in rain}) == len(rain)
    # rain layers differ between crops of one photo (not one draw cut into pieces)
    streaks = [read_image(made / r["input"])[0].astype(int) - read_image(made / r["input"].replace("input/", "target/").replace("_rainy", "_gt"))[0]
               for r in rain if r["photo"] == rain[0]["photo"]]
    assert all(not np.array_equal(streaks[a], streaks[b]) for a in range(len(streaks)) for b in range(a + 1, len(streaks)))
    # haze: airlight and beta drawn per crop from the crop's own seed
    haze = [r for r in manifest["files"] if r["task"] == "dehaze" and r["input"].startswith("test/")]
    for r in haze:
        rng = np.random.default_rng(derive_seed(0, "test", r["image"], "dehaze"))
        a, b = [(a, b) for a in mk.HAZE_AIRLIGHTS for b in mk.HAZE_BETAS][int(rng.choice(len(mk.HAZE_AIRLIGHTS) * len(mk.HAZE_BETAS), size=1, replace=False)[0])]
        assert (r["params"]["airlight"], r["params"]["beta"]) == (a, b)
    # denoise: test noise is seeded by the image name, so every crop draws its own
    ds = TestDataset(made, "denoise_25")
    noise = [(ds[i]["degraded"] - ds[i]["clean"]) for i in range(2)]
    assert not np.array_equal(noise[0].numpy(), noise[1].numpy())


def test_test_crops_geometry():
    assert mk.test_crops(512, 768, None) == [("", (0, 0, 512, 768))]
    crops = mk.test_crops(512, 768, 224, grid=3)
    assert [s for s, _ in crops] == ["-r0c0", "-r0c1", "-r0c2", "-r1c0", "-r1c1", "-r1c2"]  # 512 // 224 = 2 rows
    for _, (t, l, h, w) in crops:
        assert (h, w) == (224, 224) and 0 <= t and t + h <= 512 and 0 <= l and l + w <= 768
    assert [box[:2] for _, box in crops[:3]] == [(21, 24), (21, 272), (21, 520)]  # equal gaps of 24 px
    assert mk.test_crops(100, 150, 128) == [("-r0c0", (0, 11, 100, 128))]  # one centred crop, short side kept
    assert [box for _, box in mk.test_crops(256, 256, 128)] == [(0, 0, 128, 128), (0, 128, 128, 128), (128, 0, 128, 128), (128, 128, 128, 128)]
    assert len(mk.test_crops(2000, 2000, 64, grid=2)) == 4 and len(mk.test_crops(2000, 2000, 64)) == mk.TEST_GRID**2


def test_full_size_test_keeps_one_image_per_photo(tmp_path):
    m = mk.make_dataset(tmp_path / "ds", photos=["china"], progress=False)
    assert m["counts"]["test"] == {"denoise": 1, "derain": 1, "dehaze": 1, "jpeg": 1}
    assert [p.name for p in (tmp_path / "ds/test/derain/Rain100L/input").iterdir()] == ["china_rainy.png"]
    full = load_photo(next(p for p in corpus_photos("test") if p.name == "china"))
    assert read_image(tmp_path / "ds/test/denoise/Corpus/china.png")[0].shape == full.shape


def test_older_version_is_remade_other_settings_refused(tmp_path, caplog):
    out = tmp_path / "ds"
    mk.make_dataset(out, max_test_side=64, photos=["china"], progress=False)
    manifest = json.loads((out / mk.MANIFEST).read_text())
    manifest["settings"]["version"] = mk.VERSION - 1
    (out / mk.MANIFEST).write_text(json.dumps(manifest))
    (out / "test/denoise/Corpus/china.png").write_bytes(b"old")  # the old layout: one centre crop
    with caplog.at_level("INFO", logger="mirl"):
        m = mk.make_dataset(out, max_test_side=64, photos=["china"], progress=False)
    assert not m["reused"] and "remaking it" in caplog.text
    assert json.loads((out / mk.MANIFEST).read_text())["settings"]["version"] == mk.VERSION
    assert not (out / "test/denoise/Corpus/china.png").exists() and (out / "test/denoise/Corpus/china-r0c0.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary or old folder left
    manifest = json.loads((out / mk.MANIFEST).read_text())
    manifest["settings"]["version"] = mk.VERSION - 1
    (out / mk.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(mk.DatasetExistsError, match="other settings"):
        mk.make_dataset(out, max_test_side=32, photos=["china"], progress=False)


def test_quickstart_test_set_has_16_images_per_task(tmp_path):
    from mirl.study.config import STUDY_PRESETS
    from mirl.data.corpus import TEST_NAMES

    if len(corpus_photos("test")) < len(TEST_NAMES):
        pytest.skip("a test photo's package is not installed")
    side = STUDY_PRESETS["quickstart"]["max_test_side"]
    m = mk.make_dataset(tmp_path / "ds", max_test_side=side, photos=list(TEST_NAMES), progress=False)
    assert m["split"]["test"] and all(n >= 16 for n in m["counts"]["test"].values()), m["counts"]["test"]
    for task in ("denoise_25", "derain", "dehaze"):
        assert len(TestDataset(tmp_path / "ds", task)) >= 16
