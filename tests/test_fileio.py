"""Atomic writes: complete or absent, and a full disk named as such."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest
import torch

from mirl.errors import MirlError
from mirl.fileio import atomic_open, atomic_torch_save, atomic_write_text


def test_full_disk_is_named_and_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(MirlError, match=f"no space left on device while writing {target}"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert not list(tmp_path.glob(".*.tmp"))


def test_other_os_errors_pass_through(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        with atomic_open(tmp_path / "x.txt") as handle:
            handle.write("x")


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MB tmpfs (needs root and mount; skipped elsewhere)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_torch_save_on_a_really_full_disk(small_tmpfs):
    with pytest.raises(MirlError, match="no space left on device while writing .*big.pt"):
        atomic_torch_save({"w": torch.zeros(1_000_000)}, small_tmpfs / "big.pt")
    assert os.listdir(small_tmpfs) == []


@pytest.mark.slow
def test_study_on_a_full_disk_says_so_and_resumes_after_space_is_freed(small_tmpfs, tmp_path, capsys):
    from mirl.cli import main
    from mirl.data.make_dataset import make_dataset

    data = tmp_path / "data"
    make_dataset(data, seed=0, max_test_side=64, progress=False, photos=None)
    ballast = small_tmpfs / "ballast"
    ballast.write_bytes(b"\0" * 1_500_000)  # leaves too little for the run's files
    args = ["lottery", "--preset", "smoke", "--out", str(small_tmpfs / "runs"), "--no-progress", "--set", f"data={data}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no space left on device while writing" in err and "Traceback" not in err
    ballast.unlink()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)
    assert main(args) == 0
    runs = list((small_tmpfs / "runs").glob("*/replicate_0/level_2/main/done.json"))
    assert runs, "the study did not finish after space was freed"


def test_an_exclusive_write_never_replaces_a_file_another_process_made_first(tmp_path):
    """Two processes pruning one level at once: the first mask saved is the level's."""
    target = tmp_path / "mask.pt"
    with pytest.raises(FileExistsError):
        with atomic_open(target, exclusive=True) as handle:
            handle.write("second")
            target.write_text("first")  # the other process finishes while this one writes
    assert target.read_text() == "first"
    assert not list(tmp_path.glob(".*.tmp"))
    fresh = tmp_path / "fresh.txt"
    with atomic_open(fresh, exclusive=True) as handle:
        handle.write("only")
    assert fresh.read_text() == "only" and not list(tmp_path.glob(".*.tmp"))


def test_an_exclusive_write_without_hard_links_still_keeps_the_first_file(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "mask.pt"
    with atomic_open(target, exclusive=True) as handle:
        handle.write("first")
    with pytest.raises(FileExistsError):
        with atomic_open(target, exclusive=True) as handle:
            handle.write("second")
    assert target.read_text() == "first" and not list(tmp_path.glob(".*.tmp"))
