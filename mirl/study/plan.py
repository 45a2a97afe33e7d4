"""The bill before the run: what a study will train, on what data, and about how long it takes
(``mirl lottery --dry-run``). Nothing is written: no study folder, no data set, no lock.

The estimate is training steps x seconds per step, the seconds timed on this device from a few
steps of the study's own training step (:func:`mirl.study.step.build_train_step`) on random
batches of the study's size, or given (``--seconds-per-step``). Evaluation is not included.

Example:
    >>> plan = plan_study("smoke", {"replicates": 2, "branches": "random_reinit"}, out="/tmp/none")
    >>> len(plan.nodes), plan.steps_per_node
    (10, 6)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mirl import paths
from mirl.branches import get_branch
from mirl.study.config import StudyConfig, run_name, study_preset

# The recorded GPU figure the paper-scale estimate is read against (docs/benchmarks.md, "GPU: one H200").
RECORDED_GPU = ("H200, paper network, mirl's fast path, batch 8 of 64x64: 45.6 ms per step "
                "(docs/benchmarks.md, measured 2026-11-30)")
RECORDED_GPU_SECONDS = 0.0456
# Training samples per epoch of the published data (BSD400 + WED, Rain100L, OTS with the published
# repeats): about 142k (../shared/docs/mirl-facts.md). Used for the paper preset when its data is not here.
PUBLISHED_SAMPLES_PER_EPOCH = 142_000

Node = tuple[int, int, str]
LISTED_LINES = 40  # replicate and level lines a plan lists before it counts the rest


@dataclass
class StudyPlan:
    """A study's nodes, steps and data as they would be run now (nothing made)."""

    preset: str
    cfg: StudyConfig
    run_dir: Path
    nodes: list[Node]
    finished: list[Node] = field(default_factory=list)
    steps_per_node: int | None = None
    train_samples: int | None = None
    test_images: dict[str, int] = field(default_factory=dict)
    data_note: str = ""

    @property
    def todo(self) -> list[Node]:
        """The nodes a run would still train."""
        done = set(self.finished)
        return [n for n in self.nodes if n not in done]


def _steps_and_data(cfg: StudyConfig) -> tuple[int | None, int | None, dict[str, int], str]:
    """(steps per node, training samples, test images per task, note) from the data as it is now."""
    from mirl.data.resolve import BUILTIN, DataFolderError, dataset_root, parse_repeats

    fixed = cfg.epochs * cfg.steps_scale * cfg.steps_per_epoch if cfg.steps_per_epoch > 0 else None
    assumed = ""
    if fixed is None and cfg.model in ("small", "paper"):  # the GPU widths (paper, scaling-gpu) are billed on the published data
        fixed = cfg.epochs * cfg.steps_scale * (PUBLISHED_SAMPLES_PER_EPOCH // cfg.batch_size)
        assumed = (f"; steps assume the published data: {PUBLISHED_SAMPLES_PER_EPOCH:,} samples per epoch (BSD400 + WED, "
                   f"Rain100L, OTS with the published repeats) / batch {cfg.batch_size} x {cfg.epochs} epochs")
    if str(cfg.data) == BUILTIN and not paths.builtin_dataset_dir(cfg.max_test_side).is_dir():
        return fixed, None, {}, f"data: the built-in corpus, made at {paths.builtin_dataset_dir(cfg.max_test_side)} on the first run{assumed}"
    try:
        root = dataset_root(cfg.data, cfg.max_test_side, build=False)
    except DataFolderError as exc:
        return fixed, None, {}, f"data: {exc}{assumed}"
    from mirl.data.datasets import TestDataset, TrainDataset

    train = TrainDataset(root, list(cfg.tasks), patch_size=cfg.patch_size, repeats=parse_repeats(cfg.repeats), seed=cfg.seed)
    per_epoch = cfg.steps_per_epoch if cfg.steps_per_epoch > 0 else len(train) // cfg.batch_size
    tests = {task: len(TestDataset(root, task)) for task in train.tasks}
    return cfg.epochs * cfg.steps_scale * per_epoch, len(train), tests, f"data: {root}"


def plan_study(preset: str, overrides: Mapping[str, Any] | None = None, config_file: str | os.PathLike | None = None,
               out: str | os.PathLike | None = None) -> StudyPlan:
    """The plan of ``mirl lottery --preset P ...`` without running or writing anything."""
    from mirl.study.lottery import study_nodes

    cfg = study_preset(preset, dict(overrides or {}), config_file)
    run_dir = (Path(out).expanduser() if out is not None else paths.runs_dir()) / run_name(preset, cfg)
    nodes = study_nodes(cfg)
    replicates = {n[0] for n in nodes if paths.replicate_dir(run_dir, n[0]).is_dir()} if run_dir.is_dir() else set()
    finished = [n for n in nodes if n[0] in replicates and paths.is_finished(paths.level_dir(paths.replicate_dir(run_dir, n[0]), n[1], n[2]))]
    steps, samples, tests, note = _steps_and_data(cfg)
    return StudyPlan(preset, cfg, run_dir, nodes, finished, steps, samples, tests, note)


def seconds_per_step(cfg: StudyConfig, steps: int = 10, warmup: int = 2) -> tuple[float, str]:
    """Mean seconds of ``steps`` training steps of the study's network and step on its device
    (random batches, after ``warmup`` steps), and the device's name."""
    import torch

    from mirl.device import resolve_device
    from mirl.study.distributed import DistInfo
    from mirl.models.networks import build_network
    from mirl.models.promptir import PromptIR
    from mirl.pruning.mask import full_mask
    from mirl.study.train import TrainSettings
    from mirl.study.step import build_train_step, time_steps

    device = resolve_device(cfg.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_network(cfg.model, impl=cfg.impl).to(device)
        mask = full_mask(model.state_dict(), cfg.rule, PromptIR.unused_in_forward)
        options = TrainSettings.from_study(cfg).step_options(device, DistInfo())
        step = build_train_step(model, mask, device, options, lr=cfg.lr, weight_decay=cfg.weight_decay)
        shape = (cfg.batch_size, 3, cfg.patch_size, cfg.patch_size)
        batch = torch.rand(shape, device=device), torch.rand(shape, device=device)
        model.train()
        seconds = time_steps(step, batch, device, steps, warmup)
    name = f"CUDA: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return seconds / steps, name


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    if hours >= 48:
        return f"{hours:,.1f} h ({hours / 24:,.1f} days)"
    return f"{hours:,.1f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def _node_lines(plan: StudyPlan) -> list[str]:
    """One line per replicate and level (its nodes, finished ones marked), in one pass over the
    nodes; past :data:`LISTED_LINES` lines, the first ones and a count of the rest."""
    finished = set(plan.finished)
    groups: dict[tuple[int, int], list[str]] = {}
    for r, level, branch in plan.nodes:
        groups.setdefault((r, level), []).append(f"{branch}{' (done)' if (r, level, branch) in finished else ''}")
    lines = [f"    replicate {r} level {level}: {', '.join(marks)}" for (r, level), marks in groups.items()]
    if len(lines) > LISTED_LINES:
        rest = len(lines) - LISTED_LINES
        lines = lines[:LISTED_LINES] + [f"    ... and {rest:,} more replicate and level lines (up to replicate "
                                        f"{plan.cfg.replicates - 1} level {plan.cfg.rounds})"]
    return lines


def format_plan(plan: StudyPlan, step_seconds: float | None, timed_on: str) -> str:
    """The plan as text: settings, data, nodes with their dependencies, steps and the estimate."""
    cfg = plan.cfg
    branches = ", ".join(cfg.branches) or "none"
    lines = [f"plan of {plan.run_dir} (nothing written)",
             f"  network {cfg.model}, {cfg.rounds} rounds of {cfg.fraction:g} ({cfg.scope}), reset={cfg.reset}, "
             f"batch {cfg.batch_size} of {cfg.patch_size}x{cfg.patch_size}, {cfg.epochs * cfg.steps_scale} epochs per node",
             f"  replicates {cfg.replicates} (seeds {cfg.seed}..{cfg.seed + cfg.replicates - 1}), levels 0..{cfg.rounds}, "
             f"branches: {branches}",
             f"  {plan.data_note}"]
    if plan.train_samples is not None:
        tests = ", ".join(f"{task} {n}" for task, n in plan.test_images.items())
        lines.append(f"  training samples per epoch before capping: {plan.train_samples}; test images: {tests}")
    waits = [b for b in cfg.branches if get_branch(b).needs_trained_level]
    lines += ["  job graph: main level k and its branches after main level k-1"
              + (f"; {', '.join(waits)} after main level k (reads its trained weights)" if waits else ""),
              f"  nodes: {len(plan.nodes)} ({len(plan.finished)} finished, {len(plan.todo)} to train)"]
    lines += _node_lines(plan)
    if plan.steps_per_node is None:
        lines.append("  steps per node: unknown until the data set exists (steps_per_epoch=0 means one pass over it)")
        return "\n".join(lines)
    steps = plan.steps_per_node * len(plan.todo)
    lines.append(f"  steps: {plan.steps_per_node:,} per node, {steps:,} to train")
    if step_seconds is not None:
        lines.append(f"  estimate: {steps:,} steps x {1000 * step_seconds:.1f} ms = {_hours(steps * step_seconds)} of "
                     f"{timed_on} (training only; evaluation not included)")
    if plan.cfg.model == "paper" and not timed_on.startswith("CUDA"):
        lines.append(f"  on a GPU: {steps:,} steps x {1000 * RECORDED_GPU_SECONDS:.1f} ms = "
                     f"{_hours(steps * RECORDED_GPU_SECONDS)}, from the recorded {RECORDED_GPU}")
    return "\n".join(lines)


__all__ = ["RECORDED_GPU", "StudyPlan", "format_plan", "plan_study", "seconds_per_step"]
