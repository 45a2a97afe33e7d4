"""Nodes trained as one network (batch_nodes, mirl.study.batched): the same masks as serial nodes,
weights and scores equal within float rounding, checkpoints a serial run resumes, and the jobs
of a batched study."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mirl import paths
from mirl.data.datasets import TrainDataset
from mirl.models import build_model
from mirl.pruning import full_mask, magnitude_prune
from mirl.study.batched import Member, batch_groups, can_batch, resolve_batch_nodes, train_levels_batched
from mirl.study.config import ConfigError, study_preset
from mirl.study.distributed import DistInfo
from mirl.study.lottery import run_study
from mirl.study.train import TrainSettings, TrainState, train_level
from tests.conftest import subprocess_env
from tests.study.runs_match import largest_differences

# The tolerance docs/lottery.md states ("Nodes trained as one"): that of nodes on other thread counts.
WEIGHT_ATOL, SCORE_ATOL = 1e-4, 2e-3
STUDY = {"replicates": 2, "rounds": 1, "branches": "random_reinit", "val_curve_images": 0, "progress": False}


@pytest.mark.slow
def test_a_batched_study_writes_the_masks_weights_and_scores_of_a_serial_one(demo_data: Path, tmp_path: Path) -> None:
    serial = run_study("smoke", {**STUDY, "data": str(demo_data), "batch_nodes": "1"}, out=tmp_path / "serial")
    batched = run_study("smoke", {**STUDY, "data": str(demo_data), "batch_nodes": "2"}, out=tmp_path / "batched")
    assert serial.name == batched.name  # one study: batch_nodes is how it runs, not what it computes
    together = [json.loads(p.read_text())["train"]["execution"].get("batched_with")
                for p in sorted(batched.glob("replicate_*/level_*/*/metrics.json"))]
    assert together == [2] * 6, together  # both dense levels, both level-1 tickets, both random re-inits in pairs
    assert "3 nodes trained as one" not in (batched / "log.txt").read_text()
    assert (batched / "log.txt").read_text().count("2 nodes trained as one") == 3
    worst_weight, worst_score = largest_differences(serial, batched, nodes=6)
    print(f"largest weight difference {worst_weight:.2e}, largest score difference {worst_score:.2e}")
    assert worst_weight <= WEIGHT_ATOL and worst_score <= SCORE_ATOL


@pytest.mark.slow
def test_an_interrupted_batch_resumes_node_by_node(demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch killed after a checkpoint leaves each node its own train_state.pt; the next run
    resumes those nodes alone, serially, and ends where an uninterrupted serial run does."""
    from mirl.study import batched

    sets = {**STUDY, "data": str(demo_data), "checkpoint_every": 2}
    real, calls = batched.BatchedStep.__call__, [0]

    def dies_in_level_1(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 6 + 3:  # the 3rd step of level 1's pair of tickets, after its checkpoint at step 2
            raise RuntimeError("killed")
        return real(self, xs, ys)

    monkeypatch.setattr(batched.BatchedStep, "__call__", dies_in_level_1)
    with pytest.raises(RuntimeError, match="killed"):
        run_study("smoke", {**sets, "batch_nodes": "2"}, out=tmp_path / "batched")
    (study,) = (tmp_path / "batched").iterdir()
    for r in (0, 1):
        node = paths.level_dir(paths.replicate_dir(study, r), 1)
        assert not paths.is_finished(node) and TrainState(paths.train_state_file(node)).load(torch.device("cpu"))["step"] == 2
    monkeypatch.setattr(batched.BatchedStep, "__call__", real)
    resumed = run_study("smoke", {**sets, "batch_nodes": "2"}, out=tmp_path / "batched")
    log = (resumed / "log.txt").read_text()
    assert log.count("trains alone: it resumes from its train_state.pt") == 2, log[-2000:]
    summaries = {p.parent.relative_to(resumed).as_posix(): json.loads(p.read_text())["train"]
                 for p in resumed.glob("replicate_*/level_*/*/metrics.json")}
    assert {k: v["resumed_from"] for k, v in summaries.items() if v["resumed_from"]} == {
        "replicate_0/level_1/main": 2, "replicate_1/level_1/main": 2}
    assert summaries["replicate_0/level_1/random_reinit"]["execution"]["batched_with"] == 2
    serial = run_study("smoke", {**sets, "batch_nodes": "1"}, out=tmp_path / "serial")
    worst_weight, worst_score = largest_differences(serial, resumed, nodes=6)
    assert worst_weight <= WEIGHT_ATOL and worst_score <= SCORE_ATOL, (worst_weight, worst_score)


def _members(demo_data: Path, tmp_path: Path, settings: TrainSettings) -> list[Member]:
    """Two tiny networks of other seeds, each pruned by magnitude, with their own data seeds."""
    data = TrainDataset(demo_data, ["denoise_25", "derain"], patch_size=32, seed=0)
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = build_model("tiny")
        mask = magnitude_prune(net.state_dict(), full_mask(net.state_dict()), 0.5)
        with torch.no_grad():
            for name, param in net.named_parameters():
                if name in mask:
                    param.mul_(mask[name])
        own = copy.copy(data)
        own.seed = seed
        level_dir = tmp_path / f"node{seed}"
        level_dir.mkdir(parents=True)
        members.append(Member(net, mask, own, dataclasses.replace(settings, seed=seed), level_dir, {"level": 1, "seed": seed}))
    return members


def test_batched_checkpoints_are_those_of_serial_training_and_resume_serially(demo_data: Path, tmp_path: Path) -> None:
    settings = TrainSettings(epochs=2, warmup_epochs=1, steps_per_epoch=3, batch_size=2, lr=1e-3, checkpoint_every=4, progress=False)
    batched = _members(demo_data, tmp_path / "batched", settings)
    serial = _members(demo_data, tmp_path / "serial", settings)
    summaries = train_levels_batched(batched, torch.device("cpu"), level=1)
    assert [s["steps"] for s in summaries] == [6, 6] and all(s["execution"]["batched_with"] == 2 for s in summaries)
    for b, s in zip(batched, serial):
        train_level(s.net, s.mask, s.dataset, s.settings, s.level_dir, torch.device("cpu"), level=1, node=s.node)
        for name, keep in b.mask.items():  # pruned weights stay exactly zero
            assert not b.net.state_dict()[name][~keep].any(), name
        for name, value in s.net.state_dict().items():
            assert torch.allclose(b.net.state_dict()[name], value, atol=WEIGHT_ATOL, rtol=0), name
        # the periodic state at step 4: the serial format, the serial values
        mine, theirs = (TrainState(paths.train_state_file(m.level_dir)).load(torch.device("cpu"), m.node) for m in (b, s))
        assert mine["step"] == theirs["step"] == 4 and len(mine["log"]) == len(theirs["log"]) == 4
        assert [r["loss"] for r in mine["log"]] == pytest.approx([r["loss"] for r in theirs["log"]], abs=1e-4)
        assert mine["optimizer"]["param_groups"] == theirs["optimizer"]["param_groups"]
        assert mine["optimizer"]["state"].keys() == theirs["optimizer"]["state"].keys()
        for index, state in theirs["optimizer"]["state"].items():
            for key, value in state.items():
                assert torch.allclose(mine["optimizer"]["state"][index][key], value, atol=1e-6, rtol=1e-3), (index, key)
        for name, value in theirs["model"].items():
            assert torch.allclose(mine["model"][name], value, atol=WEIGHT_ATOL, rtol=0), name
    # an interrupted member (killed after step 4) resumes alone, serially, from the batched checkpoint
    first = batched[0]
    trained = {k: v.clone() for k, v in first.net.state_dict().items()}
    assert can_batch(first.settings, first.level_dir, False, None, DistInfo()) == "it resumes from its train_state.pt"
    resumed = train_level(first.net, first.mask, first.dataset, first.settings, first.level_dir, torch.device("cpu"), level=1,
                          node=first.node)
    assert resumed["resumed_from"] == 4
    for name, value in trained.items():
        assert torch.allclose(first.net.state_dict()[name], value, atol=WEIGHT_ATOL, rtol=0), name


class _NanAfter(torch.utils.data.Dataset):
    """Random pairs whose inputs turn NaN after ``clean_reads`` items."""

    def __init__(self, clean_reads: int) -> None:
        self.clean_reads, self.reads = clean_reads, 0

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        self.reads += 1
        clean = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i))
        return (clean * float("nan") if self.reads > self.clean_reads else clean), clean, 0


def test_a_diverging_member_stops_the_batch_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    from mirl.study.train import TrainingDiverged

    settings = TrainSettings(epochs=1, warmup_epochs=1, steps_per_epoch=4, batch_size=2, lr=1e-3, checkpoint_every=2, progress=False)
    members = []
    for i, clean_reads in enumerate((100, 6)):  # the second member's 4th batch is NaN
        net = build_model("tiny")
        (tmp_path / str(i)).mkdir()
        members.append(Member(net, {}, _NanAfter(clean_reads), settings, tmp_path / str(i), {"level": 1, "member": i}))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at level 1, epoch 0, step 4; the last good checkpoint \(.*1/train_state.pt\)"):
        train_levels_batched(members, torch.device("cpu"), level=1)
    for m in members:
        saved = TrainState(paths.train_state_file(m.level_dir)).load(torch.device("cpu"), m.node)
        assert saved["step"] == 2 and all(torch.isfinite(t).all() for t in saved["model"].values())


def test_groups_never_hold_a_node_and_what_it_starts_from() -> None:
    nodes = [(r, level, b) for r in range(3) for level in range(3) for b in ("main", "random_reinit", "stability")
             if b == "main" or level]
    groups = batch_groups(nodes, 4)
    assert sorted(n for g in groups for n in g) == sorted(nodes) and max(map(len, groups)) == 4
    seen: set = set()
    for group in groups:
        for r, level, branch in group:
            starts_from = (r, level - 1, "main") if branch == "main" else (r, level, "main")
            assert level == 0 and branch == "main" or starts_from in seen, (group, starts_from)
        assert len({(level, branch == "main") for _, level, branch in group}) == 1, group
        seen |= set(group)
    assert batch_groups(nodes, 1) == [[n] for n in nodes]


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_batch_nodes_is_refused_naming_the_value(value: str) -> None:
    with pytest.raises(ConfigError, match=f"bad value '{value}' for batch_nodes; 'auto' or a whole number"):
        study_preset("smoke", {"batch_nodes": value})


def test_auto_keeps_nodes_apart_on_the_cpu_and_a_number_is_taken_as_given() -> None:
    assert resolve_batch_nodes(study_preset("smoke", {"replicates": 3}), torch.device("cpu"))[0] == 1
    assert resolve_batch_nodes(study_preset("smoke", {"batch_nodes": "4"}), torch.device("cpu")) == (4, "batch_nodes 4")


@pytest.mark.slow
def test_local_jobs_train_a_level_of_replicates_as_one(demo_data: Path, tmp_path: Path) -> None:
    sets = [f"data={demo_data}", "replicates=2", "rounds=1", "val_curve_images=0", "batch_nodes=2"]
    cmd = [sys.executable, "-m", "mirl", "lottery", "--preset", "smoke", "--set", *sets, "--out", str(tmp_path),
           "--launcher", "local", "--jobs", "2", "--no-progress"]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    started = [line.split()[2] for line in done.stderr.splitlines() if " started (process " in line]
    assert started == ["r0+r1-L0-main", "r0+r1-L1-main"], started
    (study,) = tmp_path.iterdir()
    together = [json.loads(p.read_text())["train"]["execution"].get("batched_with") for p in study.glob("replicate_*/level_*/*/metrics.json")]
    assert together == [2] * 4, together
