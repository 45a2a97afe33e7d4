"""``mirl make-dataset`` (mirl.commands.make_dataset): what it prints against what it wrote, and
its one-line refusals. The data set itself: tests/data/test_make_dataset.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mirl.cli import main
from mirl.data.make_dataset import MANIFEST

PHOTOS = ["astronaut", "chelsea", "china"]  # one training photo, one validation photo, one test photo
ARGS = ["--photos", *PHOTOS, "--max-test-side", "32", "--no-progress"]


def _inputs_on_disk(root: Path, split: str) -> dict[str, int]:
    """Degraded inputs per task under ``root/split`` (the clean photo is denoising's input)."""
    counts = {}
    for task in sorted(p.name for p in (root / split).iterdir()):
        pattern = "*.png" if task == "denoise" else "input/*.png"
        counts[task] = sum(1 for sub in (root / split / task).iterdir() for _ in sub.glob(pattern))
    return counts


def test_printed_counts_are_the_files_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ds"
    assert main(["make-dataset", "--out", str(out), *ARGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    manifest = json.loads((out / MANIFEST).read_text())
    for split, line in zip(("train", "val", "test"), lines):
        counts, photos = line[6:].split("   photos: ")
        assert line.startswith(f"{split:5s} ")
        assert dict((t, int(n)) for t, n in (part.split() for part in counts.split(", "))) == _inputs_on_disk(out, split)
        assert photos.split(", ") == manifest["split"][split] and set(photos.split(", ")) <= set(PHOTOS)
    assert re.fullmatch(rf"wrote {re.escape(str(out))} in [\d.]+ s \(built-in demo corpus: not a benchmark\)", lines[-1])
    assert len(lines) == 4  # every photo available: no "unavailable" line


def test_a_second_run_with_the_same_settings_is_a_no_op(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ds"
    assert main(["make-dataset", "--out", str(out), *ARGS]) == 0
    capsys.readouterr()
    before = (out / MANIFEST).stat().st_mtime_ns
    assert main(["make-dataset", "--out", str(out), *ARGS]) == 0
    assert capsys.readouterr().out == f"{out}: already complete with these settings; nothing to do\n"
    assert (out / MANIFEST).stat().st_mtime_ns == before


@pytest.mark.parametrize("extra, needle", [
    (["--photos", "lena"], "unknown corpus photo(s) ['lena']; valid: "),
    (["--max-test-side", "8"], "max_test_side must be at least 16 (got 8)"),
])
def test_bad_values_are_one_line_and_write_nothing(extra: list[str], needle: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    assert main(["make-dataset", "--out", str(tmp_path / "ds"), "--no-progress", *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("mirl make-dataset: error: ") and err.count("\n") == 1 and needle in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_other_files_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    assert main(["make-dataset", "--out", str(tmp_path / "ds"), *ARGS]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ds'} exists and is not an empty folder nor a mirl dataset; choose another --out" in err
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["notes.txt"]


def test_out_is_required(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["make-dataset"])
    assert info.value.code == 2 and "--out" in capsys.readouterr().err
