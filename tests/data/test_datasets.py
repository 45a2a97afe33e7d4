"""Layout loaders on folders the tests build: the published layout and the one make-dataset writes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mirl.data import TASKS, expand_tasks
from mirl.data.datasets import DatasetError, TestDataset, TrainDataset, augment, center_crop_box, discover
from mirl.data.degrade import add_gaussian_noise, derive_seed
from mirl.data.imageio import BadImageError, write_image
from mirl.errors import MirlError


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def build_layout(root: Path, size: tuple[int, int] = (72, 90)) -> Path:
    """A miniature of the published layout, with upstream's folder and file names."""
    h, w = size
    for split in ("train", "test"):
        for i in range(2):
            write_image(root / split / "denoise" / ("BSD400" if split == "train" else "BSD68") / f"{i}.png", rgb(h, w, i))
        for i in range(2):
            base = root / split / "derain" / "Rain100L"
            write_image(base / "target" / f"rain-{i}_gt.png", rgb(h, w, 10 + i))
            write_image(base / "input" / f"rain-{i}_rainy.png", rgb(h, w, 20 + i))
        base = root / split / "dehaze" / ("OTS" if split == "train" else "SOTS")
        write_image(base / "target" / "0001_gt.png", rgb(h, w, 30))
        for a, b in (("0.8", "0.2"), ("1", "0.16")):
            write_image(base / "input" / f"0001_{a}_{b}_hazy.png", rgb(h, w, 31))
        base = root / split / "jpeg" / "Upload"
        write_image(base / "target" / "x_gt.png", rgb(h, w, 40))
        write_image(base / "input" / "x_jpeg.png", rgb(h, w, 41))
    return root


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    return build_layout(tmp_path / "datasets")


def test_expand_tasks():
    assert expand_tasks(["all_in_one"]) == ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert expand_tasks(["jpeg", "derain", "derain"]) == ["jpeg", "derain"]
    assert "jpeg" in TASKS and "jpeg" not in expand_tasks("all_in_one")
    with pytest.raises(MirlError, match="denoise_15.*all_in_one"):
        expand_tasks(["deblur"])


def test_pairing_published_layout(layout):
    samples, skipped = discover(layout, "train", "dehaze")
    assert skipped == [] and len(samples) == 2  # two hazy inputs share one target, as in OTS
    assert {s.clean.name for s in samples} == {"0001_gt.png"}
    derain, _ = discover(layout, "test", "derain")
    assert [(s.degraded.name, s.clean.name) for s in derain] == [("rain-0_rainy.png", "rain-0_gt.png"), ("rain-1_rainy.png", "rain-1_gt.png")]


def test_train_dataset_items_and_repeats(layout):
    ds = TrainDataset(layout, ["all_in_one", "jpeg"], patch_size=32)
    assert len(ds) == 3 * 2 * 3 + 2 * 120 + 2 * 1 + 1 * 1  # published factors; jpeg x1
    x, y, t = ds[0]
    assert x.shape == y.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and TASKS[t] == "denoise_15"
    small = TrainDataset(layout, ["derain"], patch_size=32, repeats={"derain": 2})
    assert len(small) == 4 and small.repeats == {"derain": 2}


def test_train_items_depend_on_seed_epoch_index_only(layout):
    ds = TrainDataset(layout, ["denoise_25", "derain"], patch_size=32, repeats={"denoise_25": 2, "derain": 2})
    a = ds[3]
    ds[0], ds[5]  # other items in between change nothing
    b = ds[3]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0], a[0])
    other = TrainDataset(layout, ["denoise_25", "derain"], patch_size=32, repeats={"denoise_25": 2, "derain": 2}, seed=1)
    assert not torch.equal(other[3][0], a[0])


def test_train_batches_do_not_depend_on_workers(layout):
    ds = TrainDataset(layout, ["denoise_50", "dehaze"], patch_size=32, repeats={"denoise_50": 2, "dehaze": 2})
    ds.set_epoch(2)
    one = [b for b in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)]
    two = [b for b in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)]
    for (x0, y0, t0), (x1, y1, t1) in zip(one, two):
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(t0, t1)


def test_denoise_patch_is_an_augmented_crop_with_mirl_noise(layout):
    ds = TrainDataset(layout, ["denoise_15"], patch_size=16, repeats={"denoise_15": 1})
    noisy, clean, _ = ds[0]
    c = (clean.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    expected, _ = add_gaussian_noise(c, 15, [0, 0, 0, 1])
    assert torch.equal(noisy, torch.from_numpy(expected.transpose(2, 0, 1)).float() / 255)


def test_augment_matches_upstream_modes():
    a = np.arange(12).reshape(3, 4)
    up = {0: a, 1: np.flipud(a), 2: np.rot90(a), 3: np.flipud(np.rot90(a)), 4: np.rot90(a, 2),
          5: np.flipud(np.rot90(a, 2)), 6: np.rot90(a, 3), 7: np.flipud(np.rot90(a, 3))}
    for mode, ref in up.items():
        assert np.array_equal(augment(a, mode), ref)
    assert all(not np.array_equal(augment(a, m), a) for m in range(1, 8))


def test_identity_never_chosen(layout, monkeypatch):
    import mirl.data.datasets as dmod

    modes = []
    real = dmod.augment
    monkeypatch.setattr(dmod, "augment", lambda arr, mode: (modes.append(mode), real(arr, mode))[1])
    ds = TrainDataset(layout, ["derain"], patch_size=16, repeats={"derain": 60})
    for i in range(len(ds)):
        ds[i]
    assert set(modes) == set(range(1, 8))


def test_test_dataset_crop_and_noise(layout):
    ds = TestDataset(layout, "denoise_25")
    item = ds[0]
    assert center_crop_box(72, 90, 16) == (4, 5, 64, 80)
    assert item["clean"].shape == (3, 64, 80) and item["crop"] == (4, 5, 64, 80) and ds.test_crop == "center_crop_16"
    clean = (item["clean"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    expected, _ = add_gaussian_noise(clean, 25, derive_seed(item["name"], 25, 0))
    assert torch.equal(item["degraded"], torch.from_numpy(expected.transpose(2, 0, 1)).float() / 255)
    assert not torch.equal(TestDataset(layout, "denoise_25", seed=1)[0]["degraded"], item["degraded"])


def test_test_noise_does_not_depend_on_workers_or_order(layout):
    ds = TestDataset(layout, "denoise_50")
    ref = [ds[i]["degraded"] for i in reversed(range(len(ds)))][::-1]
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, collate_fn=lambda b: b[0])
    for item, expected in zip(loader, ref):
        assert torch.equal(item["degraded"], expected)


def test_test_dataset_pad(layout):
    ds = TestDataset(layout, "derain", pad=True)
    item = ds[0]
    assert item["clean"].shape == (3, 72, 90) and item["degraded"].shape == (3, 80, 96)
    assert item["pad"] == (8, 6) and ds.test_crop == "pad_16"


# ----------------------------------------------------------------------------------- bad input
def test_target_without_input(layout):
    write_image(layout / "train/derain/Rain100L/target/lonely_gt.png", rgb(72, 90, 1))
    with pytest.raises(DatasetError, match="lonely_gt.png.*target without an input"):
        TrainDataset(layout, ["derain"])
    with pytest.warns(UserWarning, match="lonely_gt.png"):
        ds = TrainDataset(layout, ["derain"], skip_bad=True)
    assert len(ds.skipped) == 1


def test_input_without_target(layout):
    write_image(layout / "test/derain/Rain100L/input/orphan_rainy.png", rgb(72, 90, 1))
    with pytest.raises(DatasetError, match="orphan_rainy.png.*without a target"):
        TestDataset(layout, "derain")


def test_non_image_and_corrupt_files(layout):
    (layout / "train/denoise/BSD400/notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="notes.txt.*not an image"):
        TrainDataset(layout, ["denoise_15"])
    (layout / "train/denoise/BSD400/notes.txt").unlink()
    (layout / "train/denoise/BSD400/broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="broken.png"):
        TrainDataset(layout, ["denoise_15"])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = TrainDataset(layout, ["denoise_15"], skip_bad=True)
    assert [Path(p).name for p, _ in ds.skipped] == ["broken.png"]


def test_truncated_image_names_the_file(layout):
    path = layout / "test/jpeg/Upload/input/x_jpeg.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    ds = TestDataset(layout, "jpeg")
    with pytest.raises(BadImageError, match="x_jpeg.png"):
        ds[0]


@pytest.mark.parametrize("split", ["test", "train"])
def test_duplicate_stems_are_refused_naming_both_files(layout, split):
    """``0.png`` beside ``0.jpg``, or two rainy inputs for one ``_gt``, would be scored twice under
    one name: refused, naming both files; with skip_bad the second is skipped (issue 23, case 9)."""
    denoise = layout / split / "denoise" / ("BSD68" if split == "test" else "BSD400")
    write_image(denoise / "0.jpg", rgb(72, 90, 0))
    with pytest.raises(DatasetError, match=r"0\.png: same name as \S*0\.jpg"):
        discover(layout, split, "denoise_25")
    with pytest.warns(UserWarning, match=r"0\.png"):
        samples, skipped = discover(layout, split, "denoise_25", skip_bad=True)
    assert len({s.name for s in samples}) == len(samples) == 2 and len(skipped) == 1
    rain = layout / split / "derain" / "Rain100L" / "input"
    write_image(rain / "rain-0_rainy.jpg", rgb(72, 90, 20))
    with pytest.raises(DatasetError, match=r"rain-0_rainy\.png: same name as \S*rain-0_rainy\.jpg"):
        discover(layout, split, "derain")
    (rain / "rain-0_rainy.jpg").unlink()
    write_image(rain / "rain-1.png", rgb(72, 90, 21))  # pairs with rain-1_gt as rain-1_rainy.png does
    with pytest.raises(DatasetError, match=r"rain-1_rainy\.png: a second input for rain-1_gt\.png, beside \S*rain-1\.png"):
        discover(layout, split, "derain")
    assert len(discover(layout, split, "dehaze")[0]) == 2  # hazy inputs still share their target


def test_image_smaller_than_patch(layout):
    write_image(layout / "train/denoise/BSD400/tiny.png", rgb(20, 30, 3))
    with pytest.raises(DatasetError, match=r"tiny.png.*30x20.*patch size 64"):
        TrainDataset(layout, ["denoise_15"], patch_size=64)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "train/derain/Rain100L/input").mkdir(parents=True)
    (tmp_path / "train/derain/Rain100L/target").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no usable images"):
        TrainDataset(tmp_path, ["derain"])
    with pytest.raises(DatasetError, match="dehaze.*not found"):
        TrainDataset(tmp_path, ["dehaze"])


def _phone_jpeg(path: Path, upright: np.ndarray, orientation: int = 6) -> None:
    """A JPEG that displays as ``upright``: pixels stored turned, with the EXIF tag that turns them back."""
    from PIL import Image

    stored = {6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]  # tag 6: turn 90 deg clockwise to show
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif, quality=98, subsampling=0)


def test_exif_rotated_pairs_are_read_as_displayed(tmp_path):
    """A phone photo (EXIF 6) paired with an upright target, and a pair tagged on both sides: both align."""
    clean = np.kron(rgb(12, 8, 7), np.ones((8, 8, 1), np.uint8))  # 96 x 64 portrait, smooth enough for JPEG
    for split in ("train", "test"):
        base = tmp_path / split / "derain" / "Phone"
        write_image(base / "target" / "a_gt.png", clean)       # upright pixels, no tag
        _phone_jpeg(base / "input" / "a_rainy.jpg", clean)     # turned pixels + EXIF 6
        _phone_jpeg(base / "target" / "b_gt.jpg", clean, 8)    # both sides tagged
        _phone_jpeg(base / "input" / "b_rainy.jpg", clean, 8)
    test = TestDataset(tmp_path, "derain")
    assert test.skipped == [] and len(test) == 2
    for item in test:
        assert item["clean"].shape == item["degraded"].shape == (3, 96, 64)
        assert float((item["degraded"] - item["clean"]).abs().mean()) < 0.02  # same picture, only JPEG loss
        assert float((item["clean"] - torch.from_numpy(clean.transpose(2, 0, 1)) / 255).abs().mean()) < 0.02
    train = TrainDataset(tmp_path, ["derain"], patch_size=48, repeats={"derain": 1})
    for i in range(len(train)):
        degraded, target, _ = train[i]
        assert float((degraded - target).abs().mean()) < 0.02


def test_pair_turned_by_exif_on_one_side_only_says_so(tmp_path):
    """Degraded from the stored pixels, tag lost, target kept its tag: a clear error, not a silent misfit."""
    from PIL import Image

    clean = rgb(96, 64, 8)
    base = tmp_path / "test" / "derain" / "Phone"
    _phone_jpeg(base / "target" / "a_gt.jpg", clean)
    (base / "input").mkdir()
    with Image.open(base / "target" / "a_gt.jpg") as im:
        im.save(base / "input" / "a_rainy.png")  # a script that degrades the stored pixels and drops the tag
    with pytest.raises(DatasetError, match=r"a_rainy.png: size 96x64 differs from its target a_gt.jpg \(64x96\); the sides are swapped.*EXIF"):
        TestDataset(tmp_path, "derain")


def test_evaluate_skip_bad_lists_skipped_files_without_raw_warnings(layout, tmp_path, capsys):
    from mirl.cli import main
    from mirl.models import build_model, save_checkpoint

    save_checkpoint(tmp_path / "tiny.pt", build_model("tiny"))
    (layout / "test/derain/Rain100L/input/notes.txt").write_text("x")
    (layout / "test/derain/Rain100L/input/rain-9_rainy.png").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any raw warning fails the test
        rc = main(["evaluate", str(tmp_path / "tiny.pt"), "--data", str(layout), "--tasks", "derain", "--skip-bad",
                   "--device", "cpu", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    assert "skipped 2 bad file(s):" in out and "notes.txt: not an image file" in out and "rain-9_rainy.png: input without a target" in out
