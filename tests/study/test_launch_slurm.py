"""A study's job graph on a real single-node SLURM (tests/study/slurm_cluster.py): every job COMPLETED in
sacct, the same masks and scores as a serial run, and a job cancelled mid-level resumes to the same
files; the same graph in 2 local processes gives a serial run's files too. The cluster tests are
skipped, with the reason, only where the machine cannot run SLURM (not root, not installed).
Every test here is selected by ``pytest -k slurm`` (the module's name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mirl import paths
from mirl.study.launch import node_states, submitted_jobs, wait_for_slurm
from mirl.study.lottery import run_study
from tests.conftest import FAST, subprocess_env
from tests.study.slurm_cluster import Cluster, why_not_here

pytestmark = pytest.mark.slow

GRAPH = {"replicates": 2, "rounds": 1, "branches": "random_reinit,stability"}


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    reason = why_not_here()
    if reason:
        pytest.skip(reason)
    cluster = Cluster(tmp_path_factory.mktemp("slurm")).start()
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]
    try:
        yield cluster
    finally:
        cluster.stop()
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def _lottery(out: Path, settings: dict, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    sets = [f"{k}={v}" for k, v in settings.items()]
    cmd = [sys.executable, "-m", "mirl", "lottery", "--preset", "smoke", "--set", *sets, "--out", str(out), "--no-progress", *extra]
    return subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)  # SLURM_CONF too


@pytest.fixture(scope="module")
def graph_serial(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GRAPH study run serially in this process: what every launcher must reproduce."""
    return run_study("smoke", {"data": str(demo_data), **GRAPH, **FAST}, out=tmp_path_factory.mktemp("serial"))


def _same_files(a: Path, b: Path) -> None:
    """The same finished nodes, masks, weights and scores (timing aside)."""
    from mirl.models import load_checkpoint
    from mirl.pruning import load_mask, masks_equal

    nodes = sorted(p.parent.relative_to(a) for p in a.glob("replicate_*/level_*/*/done.json"))
    assert nodes and nodes == sorted(p.parent.relative_to(b) for p in b.glob("replicate_*/level_*/*/done.json"))
    for node in nodes:
        ma, mb = (json.loads(paths.metrics_file(x / node).read_text()) for x in (a, b))
        ma.pop("train"), mb.pop("train")
        assert ma == mb, node
        assert masks_equal(load_mask(paths.mask_file(a / node)), load_mask(paths.mask_file(b / node))), node
        wa, wb = (load_checkpoint(paths.model_file(x / node))[0].state_dict() for x in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), node


def test_slurm_graph_completes_and_matches_a_serial_run(slurm, demo_data, graph_serial, tmp_path):
    settings, serial = {"data": demo_data, **GRAPH}, graph_serial
    done = _lottery(tmp_path / "cluster", settings, "--launcher", "slurm", "--partition", "debug")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "submitted 10 SLURM job(s)" in done.stdout
    study = tmp_path / "cluster" / serial.name
    jobs = submitted_jobs(study)
    # while they run, mirl status names each waiting node's job; the last branch job is still queued
    waiting = [row for row in node_states(study) if row["state"] in ("pending", "running")]
    assert waiting and all(row["job_id"] == jobs[row["job"]]["job_id"] for row in waiting), waiting
    assert jobs["r1-L1-stability"]["job_id"] in {row["job_id"] for row in waiting}
    assert set(wait_for_slurm([j["job_id"] for j in jobs.values()]).values()) == {"COMPLETED"}
    assert len(jobs) == 10 and {tuple(n) for j in jobs.values() for n in j["nodes"]} == {
        (r, k, b) for r in (0, 1) for k, b in [(0, "main"), (0, "stability"), (1, "main"), (1, "random_reinit"), (1, "stability")]}
    # a level waits for the one before, and so does a branch of the level (it runs beside the level's main);
    # the stability copy waits for its level's main, whose trained weights end its linear path
    assert jobs["r1-L1-random_reinit"]["after"] == jobs["r1-L1-main"]["after"] == ["r1-L0-main"]
    assert jobs["r1-L1-stability"]["after"] == ["r1-L1-main"]
    table = slurm.sacct([j["job_id"] for j in jobs.values()])
    print(table)
    rows = [line.split() for line in table.splitlines()[2:] if line.strip()]
    assert len(rows) == 10 and all(row[2] == "COMPLETED" and row[3] == "0:0" for row in rows), table
    _same_files(serial, study)
    states = node_states(study)
    assert {s["state"] for s in states} == {"done"} and all(s["slurm_state"] == "COMPLETED" for s in states)
    again = _lottery(tmp_path / "cluster", settings, "--launcher", "slurm", "--partition", "debug")
    assert again.returncode == 0 and "submitted 0 SLURM job(s)" in again.stdout  # nothing left to do
    status = subprocess.run([sys.executable, "-m", "mirl", "status", str(study)], env=subprocess_env(), capture_output=True, text=True)
    assert status.returncode == 0 and "10 done of 10 nodes" in status.stdout and jobs["r0-L0-main"]["job_id"] in status.stdout


def test_slurm_job_cancelled_mid_level_resumes_to_the_same_files(slurm, demo_data, tmp_path):
    settings = {"data": demo_data, "rounds": 0, "epochs": 40, "checkpoint_every": 5}
    serial = run_study("smoke", {**settings, **FAST}, out=tmp_path / "serial")
    first = _lottery(tmp_path / "cluster", settings, "--launcher", "slurm", "--partition", "debug")
    assert first.returncode == 0, first.stderr[-2000:]
    study = tmp_path / "cluster" / serial.name
    job_id = submitted_jobs(study)["r0-L0-main"]["job_id"]
    state = paths.train_state_file(paths.level_dir(paths.replicate_dir(study, 0), 0))
    deadline = time.monotonic() + 300
    while not state.exists():
        assert time.monotonic() < deadline, "the job never checkpointed"
        time.sleep(0.2)
    subprocess.run(["scancel", job_id], env=slurm.env, check=True)
    deadline = time.monotonic() + 60
    while "CANCELLED" not in slurm.sacct([job_id]):
        assert time.monotonic() < deadline, slurm.sacct([job_id])
        time.sleep(0.5)
    assert not paths.is_finished(paths.level_dir(paths.replicate_dir(study, 0), 0))
    _a_lock_of_the_cancelled_job_on_another_host_is_stale(study, job_id)
    again = _lottery(tmp_path / "cluster", settings, "--launcher", "slurm", "--partition", "debug", "--wait")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "submitted 1 SLURM job(s)" in again.stdout  # the cancelled job is not waited for: it is submitted again
    second = submitted_jobs(study)["r0-L0-main"]["job_id"]
    table = slurm.sacct([job_id, second])
    print(table)
    assert second != job_id and {row.split()[0]: row.split()[2] for row in table.splitlines()[2:] if row.strip()} == {
        job_id: "CANCELLED+", second: "COMPLETED"}, table
    resumed = json.loads(paths.metrics_file(paths.level_dir(paths.replicate_dir(study, 0), 0)).read_text())
    assert resumed["train"]["resumed_from"] > 0
    _same_files(serial, study)


def _a_lock_of_the_cancelled_job_on_another_host_is_stale(study: Path, job_id: str) -> None:
    """What a job killed on another host leaves (its node lock, naming the job): ``mirl status``
    asks the real sacct, which knows the job ended, and shows a stale lock with the fix (it showed
    "running" for ever: a dead process can only be ruled out on this host)."""
    from mirl.runlock import LOCK_FILE

    lock = paths.level_dir(paths.replicate_dir(study, 0), 0) / LOCK_FILE
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid", "since": "2026-12-07T00:00:00", "slurm_job": job_id}) + "\n")
    status = subprocess.run([sys.executable, "-m", "mirl", "status", str(study)], env=subprocess_env(), capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert f"stale lock: {lock} names SLURM job {job_id}, which ended (CANCELLED)" in status.stdout, status.stdout
    lock.unlink()


def test_slurm_graph_in_two_local_processes_gives_the_files_of_a_serial_run(demo_data, graph_serial, tmp_path) -> None:
    """``--launcher local --jobs 2``: the jobs SLURM would run, two at a time here, lock only their node."""
    settings, serial = {"data": str(demo_data), **GRAPH}, graph_serial
    done = _lottery(tmp_path / "local", settings, "--launcher", "local", "--jobs", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    study = tmp_path / "local" / serial.name
    _same_files(serial, study)
    assert {row["state"] for row in node_states(study)} == {"done"}
    assert not list(study.rglob(".mirl.lock")), "a lock file stayed behind"
