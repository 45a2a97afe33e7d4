"""``mirl lottery --dry-run``: the plan and the bill of a study, with nothing written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mirl.cli import main
from mirl.study.config import study_preset
from mirl.study.lottery import study_nodes
from mirl.study.plan import plan_study


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MIRL_HOME", str(tmp_path))
    (tmp_path / "keep.txt").write_text("x")
    before = _files(tmp_path)
    settings = ["replicates=2", "branches=random_reinit,one_shot,stability"]
    assert main(["lottery", "--preset", "smoke", "--set", *settings, "--dry-run", "--seconds-per-step", "0.5"]) == 0
    out = capsys.readouterr().out
    assert _files(tmp_path) == before, "a dry run wrote files"
    cfg = study_preset("smoke", {"replicates": 2, "branches": "random_reinit,one_shot,stability"})
    nodes = study_nodes(cfg)
    steps = cfg.epochs * cfg.steps_per_epoch * len(nodes)
    assert f"nodes: {len(nodes)} (0 finished, {len(nodes)} to train)" in out
    assert f"steps: {cfg.epochs * cfg.steps_per_epoch} per node, {steps:,} to train" in out
    assert f"= {steps * 0.5 / 60:.1f} min of given time" in out
    assert "main level k and its branches after main level k-1; stability after main level k" in out
    assert "replicate 1 level 2: main, random_reinit, one_shot, stability" in out


def test_dry_run_times_steps_on_this_device_and_counts_finished_nodes(smoke_run: Path, demo_data: Path, capsys) -> None:
    plan = plan_study("smoke", {"data": str(demo_data)}, out=smoke_run.parent)
    assert plan.run_dir == smoke_run and plan.finished == plan.nodes and plan.todo == []
    assert plan.train_samples and set(plan.test_images) == {"denoise_25", "derain"}
    assert main(["lottery", "--preset", "smoke", "--set", f"data={demo_data}", "branches=random_reinit",
                 "--out", str(smoke_run.parent), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nodes: 5 (3 finished, 2 to train)" in out and "replicate 0 level 1: main (done), random_reinit" in out
    per_node = plan.cfg.epochs * plan.cfg.steps_per_epoch
    assert re.search(rf"estimate: {2 * per_node} steps x [\d.]+ ms = [\d.]+ min of CPU, \d+ threads", out), out
    assert not (smoke_run / "replicate_0" / "level_1" / "random_reinit").exists()


def test_paper_dry_run_on_cpu_names_the_recorded_gpu_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MIRL_HOME", str(tmp_path))
    assert main(["lottery", "--preset", "paper", "--dry-run", "--no-timing"]) == 0
    out = capsys.readouterr().out
    assert "steps assume the published data" in out and "estimate" not in out
    assert main(["lottery", "--preset", "paper", "--dry-run", "--seconds-per-step", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"on a GPU: [\d,]+ steps x 45.6 ms = [\d,.]+ h \([\d,.]+ days\), from the recorded H200", out), out
    assert os.listdir(tmp_path) == []


def test_dry_run_options_are_checked(capsys) -> None:
    assert main(["lottery", "--preset", "smoke", "--no-timing"]) == 2
    assert "go with --dry-run" in capsys.readouterr().err
    assert main(["lottery", "--preset", "smoke", "--dry-run", "--seconds-per-step", "0"]) == 2
    assert "--seconds-per-step must be a positive number" in capsys.readouterr().err


def test_the_dry_run_of_the_largest_study_allowed_takes_seconds(tmp_path: Path) -> None:
    """The plan, its listing and the job graph's shape grow linearly with the nodes (rounds=16000
    took 22 s, 100000 hung): the largest rounds x replicates the settings allow print in seconds,
    and the listing of replicates and levels is shortened."""
    import dataclasses
    import subprocess
    import sys

    from mirl.study.config import StudyConfig
    from tests.conftest import subprocess_env

    bounds = {f.name: int(f.metadata["limits"].at_most) for f in dataclasses.fields(StudyConfig) if f.name in ("rounds", "replicates")}
    sets = [f"{k}={v}" for k, v in bounds.items()] + ["branches=random_reinit"]
    proc = subprocess.run([sys.executable, "-m", "mirl", "lottery", "--preset", "smoke", "--set", *sets, "--out", str(tmp_path),
                           "--dry-run", "--no-timing", "--launcher", "slurm"],
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    nodes = bounds["replicates"] * (2 * bounds["rounds"] + 1)
    assert f"nodes: {nodes} (0 finished, {nodes} to train)" in proc.stdout
    # a level's main and its branch run side by side in every replicate, both after main's level before
    assert f"longest chain {bounds['rounds'] + 1} jobs, up to {2 * bounds['replicates']} at once" in proc.stdout
    assert len(proc.stdout.splitlines()) < 60 and "more replicate and level lines" in proc.stdout
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("model", ["small", "paper"])
def test_the_gpu_scaling_grid_is_billed_on_the_published_data(model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--preset scaling-gpu`` (small width) printed "steps unknown": only the paper width assumed the
    published data; both GPU widths now get the published budget per round."""
    from mirl.study.plan import PUBLISHED_SAMPLES_PER_EPOCH

    monkeypatch.setenv("MIRL_HOME", str(tmp_path))
    plan = plan_study("scaling-gpu", {"model": model}, out=tmp_path / "runs")
    cfg = study_preset("scaling-gpu", {"model": model})
    assert plan.steps_per_node == cfg.epochs * (PUBLISHED_SAMPLES_PER_EPOCH // cfg.batch_size)
