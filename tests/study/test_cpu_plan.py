"""Threads and processes that fit the machine (mirl.study.cpu_plan, ``mirl lottery --launcher auto``):
the plan's rules, the measurement of busy cores against a real competing process, the choice in the
dry run, and nodes trained side by side on one thread each against the serial run on two threads:
the same masks, and weights and scores equal within float tolerance (docs/benchmarks.md)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirl.cli import main
from mirl.study.cpu_plan import MIN_STEPS_FOR_PROCESSES, _cpu_times, busy_cores, plan_cpu, threads_from_env
from tests.conftest import subprocess_env
from tests.study.runs_match import largest_differences

# Weights of a node trained on 1 thread against 2 (other kernels, other rounding), after the smoke
# recipe's steps; scores (dB, SSIM) of those nodes.
WEIGHT_ATOL, SCORE_ATOL = 1e-4, 2e-3


@pytest.mark.parametrize("cores, busy, width, steps, given, expected", [
    (2, 0.0, 3, 375, {}, (2, 1)),     # quiet, nodes that can run at once: side by side, one thread each
    (2, 0.2, 1, 375, {}, (1, 2)),     # a chain: one process on both cores
    (2, 1.0, 3, 375, {}, (1, 1)),     # another job holds a core: never more threads than free cores
    (2, 1.8, 3, 375, {}, (1, 1)),     # fully busy: still one thread
    (2, 0.0, 3, MIN_STEPS_FOR_PROCESSES - 1, {}, (1, 2)),  # nodes too short to pay for a process
    (2, 0.0, 3, None, {}, (2, 1)),    # steps unknown (no data yet): taken as long enough
    (16, 2.2, 4, 375, {}, (4, 3)),    # 14 free cores, 4 nodes at once
    (16, 0.0, 4, 375, {"processes": 2}, (2, 8)),
    (2, 0.0, 3, 375, {"threads": 1}, (2, 1)),
])
def test_plan_never_asks_for_more_threads_than_free_cores(cores, busy, width, steps, given, expected) -> None:
    plan = plan_cpu(cores, busy, width, steps, **given)
    assert (plan.processes, plan.threads) == expected, plan.reason
    assert plan.processes * plan.threads <= max(1, round(cores - busy)), plan.reason
    assert f"{plan.processes} process" in plan.reason and f"x {plan.threads} thread" in plan.reason


def test_plan_says_why_and_warns_when_given_values_oversubscribe() -> None:
    short = plan_cpu(2, 0.0, 3, 8)
    assert "of 8 steps (too short to start a process each)" in short.reason
    busy = plan_cpu(2, 1.1, 3, 375)
    assert busy.reason.startswith("1 free of 2 cores (1.1 busy with other work)"), busy.reason
    over = plan_cpu(2, 1.0, 3, 375, processes=2, threads=2)
    assert (over.processes, over.threads) == (2, 2)
    assert "processes given, threads given" in over.reason and "more threads than free cores" in over.reason
    with pytest.raises(ValueError, match="cores must be at least 1, got 0"):
        plan_cpu(0, 0.0, 1, 1)


def test_threads_from_env_reads_only_a_positive_whole_number() -> None:
    assert threads_from_env({"OMP_NUM_THREADS": "4"}) == 4
    assert [threads_from_env({"OMP_NUM_THREADS": v}) for v in ("0", "two", "-1", "")] == [None] * 4


def test_cpu_times_reads_the_all_cpus_line(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n")
    assert _cpu_times(stat) == (100 + 5 + 50 + 3 + 2, 1000)


def test_busy_cores_sees_a_competing_process() -> None:
    """A pure-Python busy loop keeps one core busy: the sample must see at least most of it."""
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(1.0) >= 0.7
    finally:
        competitor.kill()
        competitor.wait()


def test_dry_run_prints_the_cpu_choice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["lottery", "--preset", "smoke", "--set", "replicates=2", "rounds=1", "--out", str(tmp_path / "runs"),
                 "--dry-run", "--no-timing", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "cpu now: " in out and "x 1 thread (threads given)" in out, out
    assert "launcher inline: " in out  # smoke nodes are too short for a process each
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("extra, message", [
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--launcher", "inline", "--jobs", "2"], "--jobs 2 is for --launcher local or auto"),
])
def test_thread_and_job_options_that_do_not_fit_are_refused(extra, message, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["lottery", "--preset", "smoke", "--out", str(tmp_path / "runs"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def _lottery(out: Path, data: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    sets = [f"data={data}", "replicates=2", "rounds=1", "branches=random_reinit"]
    cmd = [sys.executable, "-m", "mirl", "lottery", "--preset", "smoke", "--set", *sets, "--out", str(out), "--no-progress", *extra]
    return subprocess.run(cmd, env=env or subprocess_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_jobs_that_start_together_share_the_free_threads(demo_data: Path, tmp_path: Path) -> None:
    """Without --threads or OMP_NUM_THREADS the local jobs share the cores' threads: the two dense
    levels start together on one thread each, and no job starts while every thread is taken."""
    env = {k: v for k, v in subprocess_env().items() if k != "OMP_NUM_THREADS"}
    done = _lottery(tmp_path, demo_data, "--launcher", "local", "--jobs", "2", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "a job that runs alone gets every thread" in done.stderr, done.stderr[-2000:]
    starts = [line for line in done.stderr.splitlines() if " started (process " in line]
    assert len(starts) == 6 and all(re.search(r"\d+ threads?\)$", line) for line in starts), starts
    assert {line.split()[2] for line in starts[:2]} == {"r0-L0-main", "r1-L0-main"}
    assert all(line.endswith(", 1 thread)") for line in starts[:2]), starts


@pytest.mark.slow
def test_nodes_side_by_side_on_one_thread_match_the_serial_run_on_two(demo_data: Path, tmp_path: Path) -> None:
    serial = _lottery(tmp_path / "serial", demo_data, "--launcher", "inline", "--threads", "2")
    side = _lottery(tmp_path / "side", demo_data, "--launcher", "local", "--jobs", "2", "--threads", "1")
    assert serial.returncode == 0 and side.returncode == 0, serial.stderr[-1500:] + side.stderr[-1500:]
    assert "cpu: " in side.stderr and "2 processes x 1 thread" in side.stderr, side.stderr[-1500:]
    (a,), (b,) = list((tmp_path / "serial").iterdir()), list((tmp_path / "side").iterdir())
    assert "on cpu, 2 thread(s)" in (a / "log.txt").read_text() and "on cpu, 1 thread(s)" in (b / "log.txt").read_text()
    assert "cpu: " in (b / "log.txt").read_text() and "2 processes x 1 thread" in (b / "log.txt").read_text()
    worst_weight, worst_score = largest_differences(a, b, nodes=6)
    print(f"largest weight difference {worst_weight:.2e}, largest score difference {worst_score:.2e}")
    assert worst_weight <= WEIGHT_ATOL and worst_score <= SCORE_ATOL
