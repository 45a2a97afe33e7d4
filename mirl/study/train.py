"""One training loop for every level of a study: L1 loss, AdamW, warm-up + cosine per epoch,
masked weights that stay exactly zero, periodic resumable checkpoints, DDP; on CUDA bf16,
channels-last weights and the whole step replayed as one CUDA graph (:mod:`mirl.study.step`).
:func:`train_level` reads only :class:`TrainSettings`, the training part of a study's settings.

Example:
    >>> lr_at_epoch(7, base_lr=2e-4, warmup_epochs=15, max_epochs=120)
    0.0001
"""

from __future__ import annotations

import csv
import functools
import io
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from mirl import paths
from mirl.device import follow_threads
from mirl.study.config import StudyConfig
from mirl.study.distributed import DistInfo
from mirl.errors import MirlError
from mirl.fileio import atomic_torch_save, atomic_write_text
from mirl.study.log import ScalarLog
from mirl.study.step import StepOptions, build_train_step, uncompile_blocks

LOG_FIELDS = ("step", "epoch", "loss", "lr", "images_per_s", "seconds")


class TrainingDiverged(MirlError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def lr_at_epoch(epoch: int, base_lr: float, warmup_epochs: int, max_epochs: int, eta_min: float = 0.0) -> float:
    """Linear warm-up from 0 (epoch 0 trains at LR 0) then cosine to ``eta_min``, per epoch.

    The published schedule (Lightning-Bolts ``LinearWarmupCosineAnnealingLR`` with
    ``warmup_start_lr=0``) in closed form.

    Example:
        >>> lr_at_epoch(0, base_lr=2e-4, warmup_epochs=15, max_epochs=120), lr_at_epoch(120, 2e-4, 15, 120)
        (0.0, 0.0)
    """
    if warmup_epochs > 1 and epoch < warmup_epochs:
        return base_lr * epoch / (warmup_epochs - 1)
    span = max(max_epochs - warmup_epochs, 1)
    progress = min(max(epoch - warmup_epochs, 0), span) / span
    return eta_min + 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainSettings:
    """What :func:`train_level` reads of a study's settings: the same names, meanings and
    defaults (the published ones) as in :class:`mirl.study.config.StudyConfig`.

    Example:
        >>> from mirl.study.config import study_preset
        >>> TrainSettings.from_study(study_preset("smoke")).lr == study_preset("smoke").lr
        True
        >>> TrainSettings(epochs=2, steps_per_epoch=3).warmup_epochs
        15
    """

    epochs: int = StudyConfig.epochs
    warmup_epochs: int = StudyConfig.warmup_epochs
    steps_per_epoch: int = StudyConfig.steps_per_epoch
    batch_size: int = StudyConfig.batch_size
    lr: float = StudyConfig.lr
    weight_decay: float = StudyConfig.weight_decay
    optimizer: str = StudyConfig.optimizer
    loss: str = StudyConfig.loss
    schedule: str = StudyConfig.schedule
    seed: int = StudyConfig.seed
    impl: str = StudyConfig.impl
    amp: str = StudyConfig.amp
    cuda_graph: str = StudyConfig.cuda_graph
    compile: str = StudyConfig.compile
    compile_memory_budget: float = StudyConfig.compile_memory_budget
    num_workers: int = StudyConfig.num_workers
    checkpoint_every: int = StudyConfig.checkpoint_every
    progress: bool = StudyConfig.progress

    @classmethod
    def from_study(cls, cfg: StudyConfig) -> TrainSettings:
        """The training settings of study ``cfg``: its epochs (and warm-up epochs) times ``steps_scale``.

        Example:
            >>> from mirl.study.config import study_preset
            >>> TrainSettings.from_study(study_preset("smoke", {"epochs": 3})).epochs
            3
            >>> scaled = TrainSettings.from_study(study_preset("smoke", {"epochs": 3, "warmup_epochs": 2, "steps_scale": 4}))
            >>> scaled.epochs, scaled.warmup_epochs     # steps_scale: the same schedule, 4 times as long
            (12, 8)
        """
        values = {f.name: getattr(cfg, f.name) for f in fields(cls)}
        scale = int(getattr(cfg, "steps_scale", 1))
        values["epochs"] = cfg.epochs * scale
        if cfg.warmup_epochs > 1:  # 0 or 1 warm-up epoch means none (lr_at_epoch): it stays none
            values["warmup_epochs"] = cfg.warmup_epochs * scale
        return cls(**values)

    def step_options(self, device: torch.device, dist: DistInfo) -> StepOptions:
        """How the step runs on ``device`` in this process (:meth:`StepOptions.for_study`).

        Example:
            >>> TrainSettings().step_options(torch.device("cpu"), DistInfo()).fused
            True
        """
        return StepOptions.for_study(device, impl=self.impl, amp=self.amp, cuda_graph=self.cuda_graph,
                                     compile=self.compile, compile_memory_budget=self.compile_memory_budget,
                                     distributed=dist.enabled)


def epoch_batches(dataset_len: int, batch_size: int, seed: int, level: int, epoch: int, dist: DistInfo, steps: int) -> list[list[int]]:
    """The batches of one epoch: a permutation seeded by (seed, level, epoch), sharded by rank.

    ``steps`` > 0 caps the number of batches (the permutation is cycled if the set is small).

    Example:
        >>> epoch_batches(6, 2, seed=0, level=0, epoch=0, dist=DistInfo(), steps=0)
        [[2, 5], [3, 0], [1, 4]]
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + level * 10_007 + epoch)
    order = torch.randperm(dataset_len, generator=gen).tolist()
    per_step = batch_size * dist.world_size
    n_steps = steps if steps > 0 else dataset_len // per_step
    if n_steps == 0:
        raise MirlError(f"the training set has {dataset_len} samples, fewer than one batch of {per_step}; lower batch_size")
    while len(order) < n_steps * per_step:
        order += order
    batches = []
    for s in range(n_steps):
        chunk = order[s * per_step : (s + 1) * per_step]
        batches.append(chunk[dist.rank :: dist.world_size])
    return batches


def sync_interval(device: torch.device) -> int:
    """Steps between reads of the loss (each read waits for the device): 1 on CPU, 10 on CUDA.

    Example:
        >>> sync_interval(torch.device("cpu"))
        1
    """
    return 1 if device.type == "cpu" else 10


class TrainState:
    """Periodic, resumable training state of one level (``train_state.pt``).

    Example:
        >>> TrainState(Path("/nonexistent/train_state.pt")).load(torch.device("cpu")) is None
        True
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, map_location: torch.device, node: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The saved state, or ``None`` when there is none; one that is not a training state, or
        that another node saved (its ``node`` record differs from ``node``), is refused."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location=map_location, weights_only=True)
        except Exception as exc:  # an interrupted write never renames, so this is a foreign file
            raise MirlError(f"{self.path}: unreadable training state ({str(exc).splitlines()[0][:100]}); delete it to restart the level") from None
        shapes = {"model": dict, "optimizer": dict, "step": int, "log": list, "node": dict}
        wrong = [key for key, kind in shapes.items() if not isinstance(state, dict) or not isinstance(state.get(key), kind)]
        if wrong:
            raise MirlError(f"{self.path}: not a training state of this mirl (no valid {', '.join(wrong)}); delete it to "
                            "restart the level")
        if node is not None and state["node"] != dict(node):
            raise MirlError(f"{self.path}: a training state of another node ({_describe(state['node'])}), not of this one "
                            f"({_describe(node)}); delete it to restart the level")
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically."""
        atomic_torch_save(state, self.path)

    def clear(self) -> None:
        """Remove the saved state (if any)."""
        self.path.unlink(missing_ok=True)


def _describe(node: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in node.items())


def _resume(net: nn.Module, optimizer: torch.optim.Optimizer, state: Mapping[str, Any],
            mask: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load a saved state into ``net`` and ``optimizer``: its pruned weights must be zero (else it
    is another level's state), and the mask is applied again after the load."""
    advice = "delete it to restart the level"
    try:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise MirlError(f"{path}: does not fit this level's network ({str(exc).splitlines()[0][:100]}); {advice}") from None
    weights = net.state_dict()
    with torch.no_grad():
        for name, keep in mask.items():
            alive = int(torch.count_nonzero(weights[name][~keep.to(weights[name].device)]))
            if alive:
                raise MirlError(f"{path}: {alive} weight(s) of {name} that this level's mask prunes are non-zero (a state "
                                f"saved by another level or network); {advice}")
            weights[name].mul_(keep.to(weights[name].device, weights[name].dtype))


def _begin_at(optimizer: torch.optim.Optimizer, start: Mapping[str, Any], total_steps: int) -> int:
    """Load the optimiser state of a rewind point and return its step (where the level begins)."""
    step = int(start["step"])
    if not 0 <= step < total_steps:
        raise MirlError(f"the rewind point is step {step}, outside this level's {total_steps} steps; lower rewind_steps below "
                        f"{total_steps}")
    if start.get("optimizer") is not None:
        try:
            optimizer.load_state_dict(start["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise MirlError(f"the rewind point's optimiser state does not fit this level ({str(exc).splitlines()[0][:100]}); "
                            "delete the replicate's rewind_state.pt, rewind.pt and pruned levels to train them again") from None
    return step


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write a level's training log (``train_log.csv``, :data:`LOG_FIELDS`) atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


@dataclass(frozen=True)
class PendingStep:
    """A finished optimiser step whose loss has not been read from the device yet."""

    step: int
    epoch: int
    lr: float
    loss: torch.Tensor
    images: int


class LossRecord:
    """The training log of one level: reads pending losses in one device sync, stops on a
    non-finite loss, and writes each step to the CSV rows, TensorBoard and the progress bar.

    Example:
        >>> record = LossRecord(rows=[], scalars=ScalarLog(Path("."), "train", enabled=False), progress=None, level=0,
        ...                     advice="lower lr")
        >>> record.add(PendingStep(1, 0, 1e-3, torch.tensor(0.5), images=8)); record.flush()
        >>> record.rows[0]["loss"], record.last_loss
        (0.5, 0.5)
    """

    def __init__(self, rows: list[dict[str, Any]], scalars: ScalarLog, progress: Any, level: int, advice: str) -> None:
        self.rows, self.scalars, self.progress, self.level = rows, scalars, progress, level
        self.advice = advice  # what the divergence error tells the user to do
        self.pending: list[PendingStep] = []
        self.last_loss = float("nan")
        self.started = time.perf_counter()
        self.window_start, self.window_images = self.started, 0

    def add(self, pending: PendingStep) -> None:
        """Queue a step; its loss is read at the next :meth:`flush`."""
        self.pending.append(pending)

    def stop_if_not_finite(self, step: int, epoch: int, lr: float, loss: torch.Tensor) -> None:
        """Raise :class:`TrainingDiverged` before the update when ``loss`` is NaN or infinite."""
        if not torch.isfinite(loss):
            self.add(PendingStep(step, epoch, lr, loss, 0))
            self.flush()

    def flush(self) -> None:
        """Read every queued loss (one sync), check it, and record it."""
        if not self.pending:
            return
        values = torch.stack([p.loss for p in self.pending]).float().tolist()
        for pending, value in zip(self.pending, values):
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss became {value} at level {self.level}, epoch {pending.epoch}, step {pending.step}; {self.advice}")
            self.window_images += pending.images
            elapsed = time.perf_counter() - self.window_start
            speed = self.window_images / elapsed if elapsed > 0 else 0.0
            self.rows.append({"step": pending.step, "epoch": pending.epoch, "loss": round(value, 6), "lr": pending.lr,
                              "images_per_s": round(speed, 2), "seconds": round(time.perf_counter() - self.started, 3)})
            self.scalars.add({"train/loss": value, "train/lr": pending.lr, "train/images_per_s": speed}, pending.step)
            self.last_loss = value
        if self.progress is not None:
            self.progress.update(len(self.pending))
            last = self.rows[-1]
            self.progress.set_postfix(loss=f"{self.last_loss:.4f}", lr=f"{last['lr']:.2e}", img_s=f"{last['images_per_s']:.1f}")
        self.pending.clear()
        if time.perf_counter() - self.window_start > 30:  # images/s over the last half minute or so
            self.window_start, self.window_images = time.perf_counter(), 0


def train_level(
    model: nn.Module,
    mask: Mapping[str, torch.Tensor],
    dataset: torch.utils.data.Dataset,
    settings: TrainSettings,
    level_dir: Path,
    device: torch.device,
    level: int = 0,
    dist: DistInfo | None = None,
    on_step: Callable[[int, nn.Module, torch.optim.Optimizer], None] | None = None,
    node: Mapping[str, Any] | None = None,
    start: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` (already on ``device``, masked) for one level; resume from ``train_state.pt``.

    A fresh AdamW and schedule every level. Gradients of pruned weights are zeroed before the
    step and the weights are re-masked after it, so pruned weights stay exactly zero. Every
    ``settings.checkpoint_every`` steps the full state is written atomically. ``on_step(step, model, optimizer)``
    runs after each optimiser step (used to snapshot the rewind point). ``start`` (``{"step": t,
    "optimizer": state or None}``, :mod:`mirl.study.rewind`) begins a level that has no saved state
    at step t: that optimiser state, the schedule at step t + 1 and the remaining steps only. ``node`` (default: the level)
    is recorded in the saved state; a state recorded for another node is refused, and a resumed
    state's pruned weights must be zero. Returns a summary.

    Example:
        >>> from mirl.study.config import study_preset
        >>> settings = TrainSettings.from_study(study_preset("smoke", {"epochs": 1, "progress": False}))
        >>> summary = train_level(model, mask, dataset, settings, Path("runs/x/level_0"), torch.device("cpu"))  # doctest: +SKIP
    """
    dist = dist or DistInfo()
    level_dir = Path(level_dir)
    net = _unwrap(model)
    options = settings.step_options(device, dist)
    train_step = build_train_step(model, mask, device, options, lr=settings.lr, weight_decay=settings.weight_decay,
                                  optimizer=settings.optimizer, loss=settings.loss)
    from mirl.study.schedules import schedules

    schedule = schedules.get(settings.schedule)
    optimizer = train_step.optimizer
    state_file = TrainState(paths.train_state_file(level_dir))
    log_path = paths.train_log_file(level_dir)
    steps_per_epoch = len(epoch_batches(len(dataset), settings.batch_size, settings.seed, level, 0, dist, settings.steps_per_epoch))
    total_steps = steps_per_epoch * settings.epochs
    step, rows = 0, []
    identity = dict(node) if node is not None else {"level": level}
    resumed = state_file.load(device, identity)
    if resumed is None and start is not None:
        step = _begin_at(optimizer, start, total_steps)
    if resumed is not None:
        _resume(net, optimizer, resumed, mask, state_file.path)
        step, rows = int(resumed["step"]), list(resumed["log"])
        if not 0 <= step <= total_steps:
            raise MirlError(f"{state_file.path}: saved at step {step}, outside this level's {total_steps} steps; delete it "
                            "to restart the level")
    progress = None
    if settings.progress and dist.is_main:
        from tqdm.auto import tqdm

        progress = tqdm(total=total_steps, initial=step, desc=f"level {level}", unit="step", dynamic_ncols=True)
    record = LossRecord(rows, ScalarLog(level_dir, "train", enabled=dist.is_main, purge_step=step + 1 if resumed else None), progress,
                        level, advice=f"the last good checkpoint ({state_file.path}) is kept. Lower lr (now {settings.lr}) or check the data.")
    # Reading the loss forces a host-device sync; on CUDA do it every few steps, always before a
    # checkpoint, so a NaN never reaches a saved state and the GPU is not stalled every step.
    sync_every = sync_interval(device)
    model.train()
    try:
        while step < total_steps:
            epoch, offset = divmod(step, steps_per_epoch)
            lr = schedule(epoch, settings.lr, settings.warmup_epochs, settings.epochs)
            train_step.set_lr(lr)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(level * 100_000 + epoch)
            batches = epoch_batches(len(dataset), settings.batch_size, settings.seed, level, epoch, dist, settings.steps_per_epoch)
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=batches[offset:], num_workers=settings.num_workers, pin_memory=device.type == "cuda"
            )
            for degraded, clean, _task in loader:
                follow_threads()  # a local launcher may have given this job more or fewer cores
                degraded = degraded.to(device, non_blocking=True)
                clean = clean.to(device, non_blocking=True)
                check = functools.partial(record.stop_if_not_finite, step + 1, epoch, lr) if sync_every == 1 else None
                loss = train_step(degraded, clean, before_backward=check)
                step += 1
                record.add(PendingStep(step, epoch, lr, loss.detach(), degraded.shape[0] * dist.world_size))
                if on_step is not None:
                    record.flush()
                    on_step(step, net, optimizer)
                if step % settings.checkpoint_every == 0 and step < total_steps:
                    record.flush()
                    if dist.is_main:
                        state_file.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "log": rows,
                                         "node": identity})
                        write_log(log_path, rows)
                elif len(record.pending) >= sync_every:
                    record.flush()
        record.flush()
    finally:
        uncompile_blocks(train_step.compiled_blocks)
        record.scalars.close()
        if progress is not None:
            progress.close()
    if dist.is_main:
        write_log(log_path, rows)
    return {"steps": step, "epochs": settings.epochs, "final_loss": record.last_loss,
            "seconds": round(time.perf_counter() - record.started, 2),
            "resumed_from": int(resumed["step"]) if resumed else 0,
            **({"started_at": int(start["step"])} if start is not None else {}),
            "execution": {"device": device.type, "bf16": train_step.amp, "cuda_graph": train_step.cuda_graph,
                          "channels_last": options.channels_last, "compile": settings.compile,
                          **({"compile_memory_budget": settings.compile_memory_budget} if train_step.compiled_blocks else {})}}
