"""The CPU threads a study follows while it runs (mirl.device.follow_threads): the local launcher keeps
splitting the free cores among the jobs that run (mirl.study.launch.run_local with ``cores``), so a
job left alone takes the cores of the jobs that ended and gives them back when new jobs become ready;
and the load watch (mirl.study.cpu_plan.LoadWatch) gives cores back to work that starts after the
study and takes them again when it ends."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pytest
import torch

from mirl import device
from mirl.study.cpu_plan import LoadWatch, busy_cores
from mirl.study.launch import Job, run_local, split_cores


@pytest.mark.parametrize("cores, jobs, expected", [(2, 1, [2]), (2, 2, [1, 1]), (3, 2, [2, 1]), (16, 3, [6, 5, 5]),
                                                   (2, 3, [1, 1, 1]), (4, 0, [])])
def test_split_cores_gives_every_job_a_thread_and_the_first_ones_the_rest(cores, jobs, expected) -> None:
    assert split_cores(cores, jobs) == expected


def test_a_job_follows_the_count_its_launcher_writes() -> None:
    before = torch.get_num_threads()
    share = multiprocessing.get_context("spawn").RawValue("i", 1)
    try:
        device.listen_for_threads(share)
        assert torch.get_num_threads() == 1
        share.value = 2
        assert device.follow_threads() == 2 and torch.get_num_threads() == 2
    finally:
        device._share = None
        torch.set_num_threads(before)
    assert device.follow_threads() is None  # outside a launched job: nothing to follow


def _wait_for(path: Path, text: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while text not in (path.read_text() if path.exists() else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never held {text!r}")
        time.sleep(0.02)


@dataclass(frozen=True)
class _RecordingSpec:
    """A study stand-in run by real job processes: job ``a`` writes every thread count it is given
    to ``a.txt`` until it holds 3 (or the file ``stop`` exists); the others end once ``a`` has seen
    the count of their phase."""

    folder: str

    def run(self, nodes: Sequence[tuple[int, int, str]] = (), note: str | None = None) -> Path:
        (_, _, name), = nodes
        seen = Path(self.folder) / "a.txt"
        if name == "a":
            counts: list[int] = []
            deadline = time.monotonic() + 90
            stop = Path(self.folder) / "stop"
            while (not counts or counts[-1] != 3) and not stop.exists() and time.monotonic() < deadline:
                now = device.follow_threads()
                if not counts or counts[-1] != now:
                    counts.append(now)
                    seen.write_text(" ".join(map(str, counts)) + " ")
                time.sleep(0.02)
        elif name in "bcde":  # b and c end while a holds 2 threads, d and e once a gave one back
            _wait_for(seen, "2 1 " if name in "de" else "2 ")
        return Path(self.folder)


@pytest.mark.slow
def test_a_job_left_alone_takes_the_free_cores_and_gives_them_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """3 cores; a unlocks 3 jobs, b unlocks c, which unlocks d and e. a and b start together (a on 2
    threads: it unlocks more), a keeps 2 beside c, gives one back when d and e start beside it,
    takes all 3 when it is left alone, and its 3 waiting jobs then split them."""
    jobs = [Job("a", ((1, 0, "a"),)), Job("b", ((0, 0, "b"),)), Job("c", ((0, 1, "c"),), ("b",)),
            Job("d", ((0, 2, "d"),), ("c",)), Job("e", ((0, 2, "e"),), ("c",)),
            *(Job(name, ((1, 1, name),), ("a",)) for name in "fgh")]
    with caplog.at_level(logging.INFO, logger="mirl.study.launch"):
        run_local(_RecordingSpec(str(tmp_path)), jobs, processes=3, cores=3)
    counts = (tmp_path / "a.txt").read_text().split()
    assert counts[:2] == ["2", "1"] and counts[-1] == "3", counts  # (2 between them when d and e end apart)
    said = [r.getMessage() for r in caplog.records]
    assert "job a now on 1 thread" in said and "job a now on 3 threads" in said, said
    assert not any(m.startswith(("job c now", "job b now")) for m in said), said  # no thread moves back and forth
    assert sorted(m for m in said if m.startswith(("job f started", "job g started", "job h started")))[0].endswith(", 1 thread)")


def _fake_proc(root: Path, busy: int, total: int, jobs: dict[int, int], parents: dict[int, int] | None = None) -> None:
    """``/proc/stat`` with ``busy`` of ``total`` jiffies busy (user time) and ``/proc/<pid>/stat`` of
    each process (its parent: 1 unless in ``parents``); processes not listed are gone."""
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / "stat").write_text(f"cpu  {busy} 0 0 {total - busy} 0 0 0 0 0 0\n")
    for pid, jiffies in jobs.items():
        (root / str(pid)).mkdir()
        parent = (parents or {}).get(pid, 1)
        (root / str(pid) / "stat").write_text(f"{pid} (python (job)) R {parent} 1 1 0 -1 0 0 0 0 0 {jiffies} 0 0 0 20 0 1 0\n")


def test_load_watch_counts_other_work_not_the_studys_own_jobs(tmp_path: Path) -> None:
    cpus = os.cpu_count() or 1
    proc = tmp_path / "proc"
    watch = LoadWatch(planned=2, cores=2, every=0.0, proc=proc)
    _fake_proc(proc, busy=0, total=0, jobs={11: 0, 12: 0})
    assert watch.free([11, 12]) == 2  # the first sample
    per_cpu = 100  # jiffies per CPU in each sample
    _fake_proc(proc, busy=2 * per_cpu, total=cpus * per_cpu, jobs={11: per_cpu, 12: per_cpu})
    assert watch.free([11, 12]) == 2 and watch.busy == 0.0  # all the busy time is the jobs'
    _fake_proc(proc, busy=5 * per_cpu, total=2 * cpus * per_cpu, jobs={11: 2 * per_cpu, 12: 2 * per_cpu})
    assert watch.free([11, 12]) == 1 and watch.busy == 1.0  # one core's worth of other work
    _fake_proc(proc, busy=6 * per_cpu, total=3 * cpus * per_cpu, jobs={11: 3 * per_cpu})
    assert watch.free([11]) == 1  # a job ended in the sample: kept, the window starts again
    _fake_proc(proc, busy=7 * per_cpu, total=4 * cpus * per_cpu, jobs={11: 4 * per_cpu})
    assert watch.free([11]) == 2 and watch.busy == 0.0  # the other work ended
    _fake_proc(proc, busy=9 * per_cpu, total=5 * cpus * per_cpu, jobs={11: 5 * per_cpu, 40: per_cpu}, parents={40: 11})
    assert watch.free([11]) == 2 and watch.busy == 0.0  # a job's own worker process is not other work
    _fake_proc(proc, busy=10 * per_cpu + 60, total=6 * cpus * per_cpu, jobs={11: 6 * per_cpu, 40: per_cpu}, parents={40: 11})
    assert watch.free([11]) == 1 and watch.busy == 0.6  # 0.6 of a core: given back
    _fake_proc(proc, busy=11 * per_cpu + 90, total=7 * cpus * per_cpu, jobs={11: 7 * per_cpu, 40: per_cpu}, parents={40: 11})
    assert watch.free([11]) == 1 and watch.busy == 0.3  # 0.3: not taken again yet
    _fake_proc(proc, busy=12 * per_cpu + 100, total=8 * cpus * per_cpu, jobs={11: 8 * per_cpu, 40: per_cpu}, parents={40: 11})
    assert watch.free([11]) == 2 and watch.busy == 0.1  # 0.1: taken again
    started_busy = LoadWatch(planned=1, cores=2, every=0.0, proc=proc)  # planned beside work that has ended since
    _fake_proc(proc, busy=0, total=0, jobs={11: 0})
    assert started_busy.free([11]) == 1
    _fake_proc(proc, busy=per_cpu, total=cpus * per_cpu, jobs={11: per_cpu})
    assert started_busy.free([11]) == 2


def _skip_unless_two_quiet_cores() -> None:
    if (os.cpu_count() or 1) != 2 or LoadWatch(planned=2).cores != 2:
        pytest.skip("needs a machine of exactly 2 usable cores, so that one busy loop leaves 1 free")
    busy = busy_cores(1.0)
    if busy > 0.25:
        pytest.skip(f"needs a quiet machine: other work keeps {busy:.1f} core(s) busy, so a core would never come back")


@pytest.mark.slow
def test_a_job_gives_a_core_back_to_work_that_starts_after_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One job on the 2 planned cores goes to 1 thread within a few samples of a busy loop starting
    beside it, and back to 2 once the loop ends (the machine's real /proc)."""
    _skip_unless_two_quiet_cores()
    spec = _RecordingSpec(str(tmp_path))
    runner = threading.Thread(target=run_local, args=(spec, [Job("a", ((0, 0, "a"),))], 1),
                              kwargs={"cores": 2, "watch": LoadWatch(planned=2, every=0.5)})
    with caplog.at_level(logging.INFO, logger="mirl.study.launch"), caplog.at_level(logging.INFO, logger="mirl.study.cpu_plan"):
        runner.start()
        seen = tmp_path / "a.txt"
        _wait_for(seen, "2 ")
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            _wait_for(seen, "2 1 ", seconds=30)
        finally:
            competitor.kill()
            competitor.wait()
        _wait_for(seen, "2 1 2 ", seconds=30)
        (tmp_path / "stop").write_text("")
        runner.join(60)
    assert not runner.is_alive()
    assert any("other work now keeps" in r.getMessage() for r in caplog.records)


def _follow_until(wanted: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while device.follow_threads() != wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"still on {torch.get_num_threads()} thread(s), not {wanted}")
        time.sleep(0.05)


@pytest.mark.slow
def test_a_study_in_one_process_gives_a_core_back_too() -> None:
    """--launcher inline (or auto on a chain): the process measures the free cores itself."""
    _skip_unless_two_quiet_cores()
    before = torch.get_num_threads()
    with device.watching_load(LoadWatch(planned=2, every=0.5)):
        _follow_until(2)
        # a busy loop that is not this process's child (its children count as the study's own work):
        # started by a shell that exits at once, so that it belongs to init
        shell = subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                               capture_output=True, text=True, check=True)
        competitor = int(shell.stdout.strip())
        try:
            _follow_until(1)
        finally:
            os.kill(competitor, signal.SIGKILL)
        _follow_until(2)
    assert torch.get_num_threads() == before and device.follow_threads() is None
