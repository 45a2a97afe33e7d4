"""One writer per run folder (mirl.runlock), and reading a finished run writes nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mirl import paths
from mirl.study.lottery import run_study
from tests.conftest import FAST, subprocess_env

def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (folders too) with its modification time and size."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in [root, *root.rglob("*")]}


def _set_writable(root: Path, writable: bool) -> bool:
    """chmod ``root`` recursively; False when that does not stop writes (root ignores modes)."""
    for p in [root, *root.rglob("*")]:
        p.chmod((0o755 if p.is_dir() else 0o644) if writable else (0o555 if p.is_dir() else 0o444))
    if writable:
        return True
    probe = root / ".probe"
    try:
        probe.write_text("")
    except PermissionError:
        return True
    probe.unlink()
    return False


def _unfinished_copy(smoke_run: Path, tmp_path: Path) -> Path:
    """A copy of the smoke study whose last level (replicate 0, main) is not done (its mask is kept: a resume)."""
    run = tmp_path / "runs" / smoke_run.name
    shutil.copytree(smoke_run, run)
    for file in (paths.done_file, paths.metrics_file, paths.model_file):
        file(paths.level_dir(paths.replicate_dir(run, 0), 2)).unlink()
    return run


def test_reading_a_finished_run_writes_nothing(smoke_run, demo_data, tmp_path):
    """A finished run in a read-only folder can be read (reports do this); nothing is written,
    also when a setting that is not part of the run's identity (device) differs."""
    run = tmp_path / "ro" / smoke_run.name
    shutil.copytree(smoke_run, run)
    stale = paths.level_dir(paths.replicate_dir(run, 0), 1) / ".metrics.json.k1ll3d.tmp"  # left by a killed write: harmless here
    stale.write_text("{")
    if not _set_writable(run.parent, False):  # running as root: the folder stays writable, so
        stale.unlink()                        # the stale file would be tidied away (that is fine)
    before = _snapshot(run.parent)
    try:
        for settings in ({}, {"device": "cpu"}):
            assert run_study("smoke", {"data": str(demo_data), **FAST, **settings}, out=run.parent) == run
            assert _snapshot(run.parent) == before
    finally:
        _set_writable(run.parent, True)


def test_unfinished_run_in_read_only_folder_says_what_to_do(smoke_run, demo_data, tmp_path, monkeypatch):
    from mirl.errors import MirlError
    import mirl.runlock as runlock

    run = _unfinished_copy(smoke_run, tmp_path)
    if not _set_writable(run.parent, False):  # running as root: simulate the read-only folder
        def refuse(path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(runlock, "_open_lock_file", refuse)
    before = _snapshot(run.parent)
    try:
        with pytest.raises(MirlError, match=rf"{run} is read-only.*copy it somewhere writable"):
            run_study("smoke", {"data": str(demo_data), **FAST}, out=run.parent)
        assert _snapshot(run.parent) == before
    finally:
        _set_writable(run.parent, True)


_HOLD_LOCK = "import sys, time; from mirl.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(300)"


def test_second_writer_refuses_while_the_run_is_locked(smoke_run, demo_data, tmp_path):
    """Two commands on one run folder: the second refuses (naming the folder and the holder);
    after the holder dies (kill -9 included) the run goes on."""
    import socket

    from mirl.errors import MirlError

    run = _unfinished_copy(smoke_run, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(run.parent)
        with pytest.raises(MirlError, match=rf"{run} is in use by another mirl process \(pid {holder.pid} on {socket.gethostname()}"):
            run_study("smoke", {"data": str(demo_data), **FAST}, out=run.parent)
        assert _snapshot(run.parent) == before
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert run_study("smoke", {"data": str(demo_data), **FAST}, out=run.parent) == run
    assert paths.done_file(paths.level_dir(paths.replicate_dir(run, 0), 2)).exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [], "the lock file stayed behind"


def test_a_node_another_process_runs_is_refused(smoke_run, demo_data, tmp_path):
    """Jobs of one study lock only their node (mirl.study.launch): a plain run refuses a node a job
    holds, naming it; once the holder is gone, a job (shared) runs that node alone."""
    from mirl.errors import MirlError

    run = _unfinished_copy(smoke_run, tmp_path)
    node = paths.level_dir(paths.replicate_dir(run, 0), 2)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(node)], env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(MirlError, match=rf"{node} is in use by another mirl process \(pid {holder.pid} "):
            run_study("smoke", {"data": str(demo_data), **FAST}, out=run.parent)
        assert not paths.is_finished(node)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert run_study("smoke", {"data": str(demo_data), **FAST}, out=run.parent, nodes=[(0, 2, "main")], shared=True) == run
    assert paths.is_finished(node) and not list(run.rglob(".mirl.lock"))


def test_finished_run_is_readable_while_locked(smoke_run, demo_data):
    from mirl.runlock import RunLock

    with RunLock(smoke_run):
        assert run_study("smoke", {"data": str(demo_data), **FAST}, out=smoke_run.parent) == smoke_run


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    """``.mirl.lock -> ../outside.txt``: taking the lock truncates and writes the lock file, so a
    link is refused in one line instead of overwriting its target."""
    from mirl.errors import MirlError
    from mirl.runlock import LOCK_FILE, RunLock

    run = tmp_path / "run"
    run.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    (run / LOCK_FILE).symlink_to(Path("..") / "outside.txt")
    with pytest.raises(MirlError, match="is a symbolic link") as info:
        RunLock(run).acquire()
    assert str(run / LOCK_FILE) in str(info.value) and "remove it" in str(info.value)
    assert outside.read_text() == "keep\n" and (run / LOCK_FILE).is_symlink()


def test_a_lock_taken_in_a_slurm_job_names_the_job(tmp_path, monkeypatch):
    """The lock file names the SLURM job that holds it: mirl status asks the scheduler whether a lock
    left on another host (where its pid cannot be checked) belongs to a job that ended."""
    from mirl.runlock import RunLock, lock_holder

    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with RunLock(tmp_path / "run"):
        holder = lock_holder(tmp_path / "run")
        assert holder["slurm_job"] == "4242" and holder["pid"] == os.getpid()
    monkeypatch.delenv("SLURM_JOB_ID")
    with RunLock(tmp_path / "run"):
        assert lock_holder(tmp_path / "run")["slurm_job"] is None


def test_reading_a_lock_file_that_is_a_fifo_or_a_link_does_not_block(tmp_path):
    """mirl status reads every node's lock file: a FIFO there blocked it, a link was followed."""
    from mirl.runlock import LOCK_FILE, lock_holder

    os.mkfifo(tmp_path / LOCK_FILE)
    assert lock_holder(tmp_path)["pid"] is None
    (tmp_path / LOCK_FILE).unlink()
    (tmp_path / "elsewhere.json").write_text('{"pid": 1, "host": "gpu-node-17", "since": "2026-12-01T10:00:00"}')
    (tmp_path / LOCK_FILE).symlink_to("elsewhere.json")
    assert lock_holder(tmp_path)["pid"] is None
