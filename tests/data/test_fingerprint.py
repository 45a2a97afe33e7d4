"""mirl.data.fingerprint: the record of a study's data files, and what changed since."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mirl.data.fingerprint import data_fingerprint, fingerprint_changes
from mirl.data.imageio import write_image


def rgb(seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    """denoise and derain in the published layout, train and test."""
    root = tmp_path / "data"
    for split in ("train", "test"):
        for i in range(2):
            write_image(root / split / "denoise" / "BSD" / f"{i}.png", rgb(i))
            write_image(root / split / "derain" / "Rain100L" / "target" / f"r{i}_gt.png", rgb(10 + i))
            write_image(root / split / "derain" / "Rain100L" / "input" / f"r{i}_rainy.png", rgb(20 + i))
    (root / "test" / "derain" / "Rain100L" / "input" / ".DS_Store").write_bytes(b"junk")  # hidden: not data
    return root


def test_records_train_sizes_and_test_hashes_of_the_tasks_files(layout: Path) -> None:
    fp = data_fingerprint(layout, ["denoise", "derain"])
    files = lambda split: sorted(p.relative_to(layout).as_posix() for p in (layout / split).rglob("*.png"))  # noqa: E731
    assert sorted(fp["train"]) == files("train") and sorted(fp["test"]) == files("test")
    for name, size in fp["train"].items():
        assert size == (layout / name).stat().st_size
    for name, digest in fp["test"].items():
        assert digest == hashlib.sha256((layout / name).read_bytes()).hexdigest()


def test_only_the_named_tasks_count(layout: Path) -> None:
    """A sigma task, or the denoise alias, fingerprints the denoise folder alone, once."""
    one, alias = data_fingerprint(layout, ["denoise_25"]), data_fingerprint(layout, ["denoise"])
    assert one == alias
    assert all(name.startswith("train/denoise/") for name in one["train"]) and len(one["test"]) == 2


def test_unchanged_data_has_no_changes(layout: Path) -> None:
    first = data_fingerprint(layout, ["denoise", "derain"])
    assert fingerprint_changes(first, data_fingerprint(layout, ["denoise", "derain"])) == []


def test_changed_added_and_removed_files_are_listed_in_order(layout: Path) -> None:
    before = data_fingerprint(layout, ["denoise", "derain"])
    write_image(layout / "test" / "denoise" / "BSD" / "0.png", rgb(99))  # same size, other content
    write_image(layout / "train" / "denoise" / "BSD" / "2.png", rgb(2))
    (layout / "train" / "denoise" / "BSD" / "1.png").unlink()
    after = data_fingerprint(layout, ["denoise", "derain"])
    changes = fingerprint_changes(before, after)
    assert changes == ["train/denoise/BSD/1.png (removed)", "train/denoise/BSD/2.png (added)",
                       "test/denoise/BSD/0.png (changed)"]  # each path once, split first


def test_a_changed_test_file_of_the_same_size_is_caught(layout: Path) -> None:
    """Test files are hashed: a same-size edit changes the fingerprint."""
    path = layout / "test" / "derain" / "Rain100L" / "target" / "r0_gt.png"
    before = data_fingerprint(layout, ["derain"])
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # one byte, same length
    path.write_bytes(bytes(data))
    changes = fingerprint_changes(before, data_fingerprint(layout, ["derain"]))
    assert changes == ["test/derain/Rain100L/target/r0_gt.png (changed)"]


def test_changes_tolerate_missing_splits() -> None:
    assert fingerprint_changes({}, {"test": {"a.png": "x"}}) == ["test/a.png (added)"]
    assert fingerprint_changes({"train": {"a.png": 1}}, {"train": None}) == ["train/a.png (removed)"]
