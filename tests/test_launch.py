"""The study as a job graph (mirl.launch): its shape, and N local processes giving a serial run's files."""

from __future__ import annotations

import subprocess
import sys

from mirl.config import study_preset
from mirl.launch import job_graph, node_states
from mirl.lottery import run_study, study_nodes
from tests.conftest import FAST, subprocess_env
from tests.test_slurm import _same_files


def test_the_graph_runs_every_node_once_after_what_it_starts_from() -> None:
    cfg = study_preset("smoke", {"replicates": 2, "rounds": 2, "branches": "random_reinit,one_shot,stability"})
    jobs = job_graph(cfg)
    assert sorted(n for j in jobs for n in j.nodes) == sorted(study_nodes(cfg))
    names = [j.name for j in jobs]
    for job in jobs:
        assert all(names.index(a) < names.index(job.name) for a in job.after)  # listed after what it waits for
        (r, level, branch), = job.nodes
        expected = () if (branch == "main" and level == 0) else (f"r{r}-L{level - 1}-main",) if branch == "main" else (f"r{r}-L{level}-main",)
        assert job.after == expected, job
    assert not any(a.startswith("r1") for j in jobs if j.name.startswith("r0") for a in j.after)  # replicates side by side


def test_local_jobs_give_the_files_of_a_serial_run(demo_data, tmp_path) -> None:
    settings = {"data": str(demo_data), "replicates": 2, "rounds": 1, "branches": "random_reinit"}
    serial = run_study("smoke", {**settings, **FAST}, out=tmp_path / "serial")
    cmd = [sys.executable, "-m", "mirl", "lottery", "--preset", "smoke", "--set", *[f"{k}={v}" for k, v in settings.items()],
           "--launcher", "local", "--jobs", "2", "--out", str(tmp_path / "local"), "--no-progress"]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    _same_files(serial, tmp_path / "local" / serial.name)
    assert {row["state"] for row in node_states(tmp_path / "local" / serial.name)} == {"done"}
