"""Several nodes of one shape trained as one network (``batch_nodes``): stacked weights, one
``torch.func.vmap`` step, and each node's own mask, data order, degradation draws and optimiser state.

Each member's loss is its own batch's mean and the losses are summed, so every member gets the
gradient a serial step would give it; masks, AdamW (or SGD: both act element by element) and the
schedule then act on the stacked tensors exactly as on one network's. What differs is float
rounding: vmap runs each convolution as a grouped one over the members (``docs/lottery.md``,
"Nodes trained as one" gives the tolerance the tests hold). Each member writes the files a
serial run writes (``train_log.csv``, TensorBoard, and the periodic ``train_state.pt`` in the
serial format, so an interrupted member resumes on its own, serially).

Example:
    >>> from mirl.study.config import study_preset
    >>> resolve_batch_nodes(study_preset("smoke"), torch.device("cpu"))
    (1, 'batch_nodes auto: 1 on the CPU, where a batched step does less work than serial ones (docs/benchmarks.md, benchmarks/study_throughput.py)')
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from mirl import paths
from mirl.paths import MAIN
from mirl.device import follow_threads
from mirl.errors import MirlError
from mirl.pruning.mask import MaskApplier
from mirl.study.config import StudyConfig
from mirl.study.distributed import DistInfo
from mirl.study.log import ScalarLog
from mirl.study.train import LossRecord, PendingStep, TrainSettings, TrainState, epoch_batches, sync_interval, write_log

Node = tuple[int, int, str]  # (replicate, level, branch)

# The batched step against N serial ones, below which auto keeps nodes serial on a GPU.
PAYS_AT = 1.1


@dataclass
class Member:
    """One node of a batch: its network (on the device, masked, at its starting weights), mask,
    own copy of the training set (its seed set), settings, folder and identity."""

    net: nn.Module
    mask: Mapping[str, torch.Tensor]
    dataset: Any
    settings: TrainSettings
    level_dir: Path
    node: Mapping[str, Any]


def resolve_batch_nodes(cfg: StudyConfig, device: torch.device) -> tuple[int, str]:
    """How many nodes a study trains as one, and why: a number is taken as given; ``auto`` is 1
    on the CPU (measured there: 2 processes of 1 thread beat batching) and, on a GPU, the
    replicates or branches of a level when :func:`batched_speedup` measures a gain of at least
    :data:`PAYS_AT` there, else 1.

    Example:
        >>> from mirl.study.config import study_preset
        >>> resolve_batch_nodes(study_preset("smoke", {"batch_nodes": "3"}), torch.device("cpu"))[0]
        3
    """
    if cfg.batch_nodes != "auto":
        return int(cfg.batch_nodes), f"batch_nodes {cfg.batch_nodes}"
    if device.type == "cpu":
        return 1, ("batch_nodes auto: 1 on the CPU, where a batched step does less work than serial ones "
                   "(docs/benchmarks.md, benchmarks/study_throughput.py)")
    width = max(cfg.replicates, len(cfg.branches), 1)
    if width == 1:
        return 1, "batch_nodes auto: 1 (one replicate, no branches: nothing to batch)"
    speedup = batched_speedup(cfg, device, width)
    chosen = width if speedup >= PAYS_AT else 1
    return chosen, (f"batch_nodes auto: {chosen} ({width} networks as one did {speedup:.2f}x the work of {width} serial "
                    f"steps on {device}, measured now; batching from {PAYS_AT}x)")


def batched_speedup(cfg: StudyConfig, device: torch.device, width: int, steps: int = 5, warmup: int = 2) -> float:
    """Work of one batched step of ``width`` copies of the study's network against ``width``
    serial steps (the study's own step: CUDA graph and bf16 where it uses them), on random
    batches of the study's size; > 1: batching pays.

    Example:
        >>> from mirl.study.config import study_preset
        >>> batched_speedup(study_preset("smoke"), torch.device("cpu"), 2, steps=1, warmup=1) > 0
        True
    """
    from mirl.models.networks import build_network
    from mirl.study.step import build_train_step, time_steps

    settings = TrainSettings.from_study(cfg)
    shape = (cfg.batch_size, 3, cfg.patch_size, cfg.patch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nets = [build_network(cfg.model, impl=cfg.impl).to(device) for _ in range(width)]
        x, y = torch.rand(shape, device=device), torch.rand(shape, device=device)
        serial = build_train_step(nets[0], {}, device, settings.step_options(device, DistInfo()), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay, optimizer=cfg.optimizer, loss=cfg.loss)
        batched = BatchedStep(nets, [{}] * width, settings, device)
        xs, ys = x.expand(width, *shape).contiguous(), y.expand(width, *shape).contiguous()
        return width * time_steps(serial, (x, y), device, steps, warmup) / time_steps(batched, (xs, ys), device, steps, warmup)


class BatchedStep:
    """``step(xs, ys) -> losses``: one optimiser step of every member on its own batch
    (``xs[i]``, ``ys[i]``); the members' losses (computed before the update) come back detached, on
    the device, as one tensor (not read, so the host does not wait). The stacked weights live here; :meth:`unstack` writes them back.

    Example:
        >>> from mirl.models import build_model
        >>> nets = [build_model("tiny") for _ in range(2)]
        >>> step = BatchedStep(nets, [{}, {}], TrainSettings(), torch.device("cpu"))
        >>> step(torch.rand(2, 1, 3, 16, 16), torch.rand(2, 1, 3, 16, 16)).shape
        torch.Size([2])
    """

    def __init__(self, nets: Sequence[nn.Module], masks: Sequence[Mapping[str, torch.Tensor]], settings: TrainSettings,
                 device: torch.device) -> None:
        from torch.func import functional_call, stack_module_state, vmap

        from mirl.study.losses import losses
        from mirl.study.optimizers import optimizers

        shapes = {n: t.shape for n, t in nets[0].state_dict().items()}
        for net in nets[1:]:
            if {n: t.shape for n, t in net.state_dict().items()} != shapes:
                raise MirlError("nodes trained as one need networks of one shape; set batch_nodes=1")
        self.nets = list(nets)
        params, self.buffers = stack_module_state(self.nets)
        self.params = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
        names = list(masks[0])
        if any(list(m) != names for m in masks):
            raise MirlError("nodes trained as one need masks of the same tensors; set batch_nodes=1")
        self.masker = MaskApplier.for_tensors([self.params[n] for n in names], [torch.stack([m[n] for m in masks]) for n in names])
        make = optimizers.entry(settings.optimizer).item
        fused = settings.impl == "fast"
        self.optimizer = make(list(self.params.values()), settings.lr, settings.weight_decay, fused=fused)
        # a serial optimiser per member, never stepped: it writes the member's state in the serial format
        self.member_optimizers = [make(list(net.parameters()), settings.lr, settings.weight_decay, fused=fused)
                                  for net in self.nets]
        self.amp = device.type == "cuda" and settings.amp in ("auto", "bf16")
        template = copy.deepcopy(self.nets[0]).to("meta")
        loss_fn = losses.entry(settings.loss).item

        def one_loss(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
                out = functional_call(template, (p, b), (x,))
            return loss_fn(out.float(), y)

        self._losses = vmap(one_loss)

    def set_lr(self, lr: float) -> None:
        """Set every member's learning rate."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        losses = self._losses(self.params, self.buffers, xs, ys)
        losses.sum().backward()
        self.masker.grads()
        self.optimizer.step()
        self.masker.weights()
        return losses.detach()

    @torch.no_grad()
    def unstack(self) -> None:
        """Copy the stacked weights into the members' networks."""
        for i, net in enumerate(self.nets):
            for name, param in net.named_parameters():
                param.copy_(self.params[name][i])

    def member_optimizer_state(self, i: int) -> dict[str, Any]:
        """Member ``i``'s optimiser state as its serial optimiser would save it."""
        own = self.member_optimizers[i]
        named = dict(self.nets[i].named_parameters())
        own.state.clear()
        for name, stacked in self.params.items():
            state = self.optimizer.state.get(stacked)
            if state:
                own.state[named[name]] = {k: (v[i].clone() if torch.is_tensor(v) and v.shape == stacked.shape else
                                              v.clone() if torch.is_tensor(v) else v) for k, v in state.items()}
        for group, stacked_group in zip(own.param_groups, self.optimizer.param_groups):
            group["lr"] = stacked_group["lr"]
        return own.state_dict()


def train_levels_batched(members: Sequence[Member], device: torch.device, level: int) -> list[dict[str, Any]]:
    """Train ``members`` (nodes of one ``level`` with no saved state, starting at step 0) as one
    network; each keeps its own data order and degradation draws (its dataset's seed) and gets
    the files and summary :func:`mirl.study.train.train_level` gives a serial node.

    Example:
        >>> summaries = train_levels_batched(members, torch.device("cpu"), level=1)  # doctest: +SKIP
    """
    from mirl.study.schedules import schedules

    first = members[0].settings
    step = BatchedStep([m.net for m in members], [m.mask for m in members], first, device)
    schedule = schedules.get(first.schedule)
    dist = DistInfo()
    steps_per_epoch = len(epoch_batches(len(members[0].dataset), first.batch_size, first.seed, level, 0, dist,
                                        first.steps_per_epoch))
    total_steps = steps_per_epoch * first.epochs
    states = [TrainState(paths.train_state_file(m.level_dir)) for m in members]
    progress = None
    if first.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=total_steps, desc=f"level {level}, {len(members)} nodes as one", unit="step", dynamic_ncols=True)
    records = [LossRecord([], ScalarLog(m.level_dir, "train"), None, level,
                          advice=f"the last good checkpoint ({state.path}) is kept. Lower lr (now {m.settings.lr}) or check the data.")
               for m, state in zip(members, states)]
    for net in step.nets:
        net.train()
    sync_every = sync_interval(device)
    started, done = time.perf_counter(), 0
    try:
        for epoch in range(first.epochs):
            lr = schedule(epoch, first.lr, first.warmup_epochs, first.epochs)
            step.set_lr(lr)
            loaders = []
            for m in members:
                if hasattr(m.dataset, "set_epoch"):
                    m.dataset.set_epoch(level * 100_000 + epoch)
                batches = epoch_batches(len(m.dataset), m.settings.batch_size, m.settings.seed, level, epoch, dist,
                                        m.settings.steps_per_epoch)
                loaders.append(torch.utils.data.DataLoader(m.dataset, batch_sampler=batches, num_workers=m.settings.num_workers,
                                                           pin_memory=device.type == "cuda"))
            for batch in zip(*loaders):
                follow_threads()  # a local launcher may have given this job more or fewer cores
                xs = torch.stack([degraded for degraded, _clean, _task in batch]).to(device, non_blocking=True)
                ys = torch.stack([clean for _degraded, clean, _task in batch]).to(device, non_blocking=True)
                losses = step(xs, ys)
                done += 1
                for record, loss in zip(records, losses):
                    record.add(PendingStep(done, epoch, lr, loss, xs.shape[1]))
                checkpoint = done % first.checkpoint_every == 0 and done < total_steps
                if checkpoint or len(records[0].pending) >= sync_every:  # a NaN never reaches a saved state
                    for record in records:
                        record.flush()
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(lr=f"{lr:.2e}", img_s=f"{len(members) * done * xs.shape[1] / (time.perf_counter() - started):.1f}")
                if checkpoint:
                    step.unstack()
                    for i, (m, state, record) in enumerate(zip(members, states, records)):
                        state.save({"model": m.net.state_dict(), "optimizer": step.member_optimizer_state(i), "step": done,
                                    "log": record.rows, "node": dict(m.node)})
                        write_log(paths.train_log_file(m.level_dir), record.rows)
    finally:
        for record in records:
            record.scalars.close()
        if progress is not None:
            progress.close()
    for record in records:
        record.flush()
    step.unstack()
    seconds = round(time.perf_counter() - started, 2)
    summaries = []
    for m, record in zip(members, records):
        write_log(paths.train_log_file(m.level_dir), record.rows)
        summaries.append({"steps": done, "epochs": first.epochs, "final_loss": record.last_loss, "seconds": seconds,
                          "resumed_from": 0,
                          "execution": {"device": device.type, "bf16": step.amp, "cuda_graph": False, "channels_last": False,
                                        "compile": "none", "batched_with": len(members)}})
    return summaries


def batch_groups(nodes: Sequence[Node], batch: int) -> list[list[Node]]:
    """``nodes`` in the order they run, in groups of at most ``batch`` that may train together:
    with ``batch`` > 1 level by level (a level's main nodes, then its branches, replicates in
    order), so that no node of a group waits for another.

    Example:
        >>> nodes = [(0, 0, "main"), (0, 1, "main"), (0, 1, "random_reinit"), (1, 0, "main"), (1, 1, "main"), (1, 1, "random_reinit")]
        >>> batch_groups(nodes, 2)
        [[(0, 0, 'main'), (1, 0, 'main')], [(0, 1, 'main'), (1, 1, 'main')], [(0, 1, 'random_reinit'), (1, 1, 'random_reinit')]]
    """
    if batch <= 1:
        return [[node] for node in nodes]
    groups: list[list[Node]] = []
    for node in sorted(nodes, key=lambda n: (n[1], n[2] != MAIN)):  # stable: replicates keep their order
        if groups and len(groups[-1]) < batch and (groups[-1][0][1], groups[-1][0][2] == MAIN) == (node[1], node[2] == MAIN):
            groups[-1].append(node)
        else:
            groups.append([node])
    return groups


def can_batch(settings: TrainSettings, level_dir: Path, hooked: bool, start: Mapping[str, Any] | None, dist: DistInfo) -> str | None:
    """Why this node must train alone (``None``: it can join a batch): a hook on each step (the
    dense level's rewind point or validation curve), a rewind start, a saved state to resume, or torchrun.

    Example:
        >>> can_batch(TrainSettings(), Path("/nonexistent"), hooked=True, start=None, dist=DistInfo())
        'it runs a hook after each step (rewind point or validation curve)'
    """
    if hooked:
        return "it runs a hook after each step (rewind point or validation curve)"
    if start is not None:
        return "it starts at a rewind point"
    if paths.train_state_file(level_dir).exists():
        return "it resumes from its train_state.pt"
    if dist.enabled:
        return "torchrun trains one network over its processes"
    if settings.compile != "none":
        return "compile=regional compiles one network's blocks"
    return None


__all__ = ["BatchedStep", "Member", "batch_groups", "batched_speedup", "can_batch", "resolve_batch_nodes", "train_levels_batched"]
