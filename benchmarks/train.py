"""Training throughput: the ``fast`` path against the ``reference`` path in one process.

Both paths build their step with the study's own :func:`mirl.study.step.build_train_step`.
Reference path: ``impl="reference"``, fp32, ``torch.optim.AdamW`` with its defaults (lr 2e-4,
weight decay 0.01), eager. Fast path: the options the study picks on this device
(:meth:`mirl.study.step.StepOptions.for_study`), ``impl="fast"``; on CUDA also bf16 autocast,
fused AdamW, channels-last weights and the whole step (forward, backward, optimizer, masks)
captured in one CUDA graph; optional ``torch.compile``. Both paths start from the same weights
and see the same batches (pre-staged on the device, so data loading never stalls the step).
Prints images/s, ms/step, peak memory and fast/reference ratios; ``--loss-curve N`` records both
loss curves for N steps (JSON + PNG).

Example:
    python -m benchmarks.train --preset paper --batch 32 --patch 128 --device cuda
    python -m benchmarks.train --preset small --batch 8 --patch 64 --device cpu
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from benchmarks.common import (
    PeakMemory,
    add_common_args,
    env_info,
    format_table,
    load_photos,
    pick_device,
    sync,
    write_json,
)
from mirl.models import build_model
from mirl.models.promptir import PromptIR
from mirl.pruning.rules import prunable_names
from mirl.study.step import COMPILE_MODES, StepOptions, build_train_step

LR = 2e-4
WEIGHT_DECAY = 0.01
# Upstream epoch size (about 142k samples) and epochs per pruning round: "one round" below.
SAMPLES_PER_EPOCH = 142_000
EPOCHS_PER_ROUND = 120


@dataclass(frozen=True)
class PathConfig:
    """How one path trains: model implementation, precision, optimizer and launch strategy."""

    name: str
    impl: str = "reference"
    amp: bool = False  # bf16 autocast
    optimizer: str = "default"  # default | fused
    channels_last: bool = False
    cuda_graph: bool = False
    compile: str = "none"
    compile_memory_budget: float = 1.0  # with compile: fraction of the default activations kept

    def options(self) -> StepOptions:
        """The step options of this path (:func:`mirl.study.step.build_train_step`).

        Example:
            >>> reference_path().options().fused
            False
        """
        if self.optimizer not in ("default", "fused"):
            raise ValueError(f"unknown optimizer variant {self.optimizer!r}; valid: default, fused")
        return StepOptions(amp=self.amp, fused=self.optimizer == "fused", channels_last=self.channels_last,
                           cuda_graph=self.cuda_graph, compile=self.compile,
                           compile_memory_budget=self.compile_memory_budget)

    def describe(self) -> str:
        """A short label: implementation, precision, optimizer and launch strategy."""
        parts = [self.impl, "bf16" if self.amp else "fp32", f"adamw-{self.optimizer}"]
        parts += ["channels_last"] * self.channels_last + ["cuda_graph"] * self.cuda_graph
        parts += [f"compile={self.compile}"] * (self.compile != "none")
        parts += [f"memory_budget={self.compile_memory_budget:g}"] * (self.compile != "none" and self.compile_memory_budget < 1)
        return "+".join(parts)


def reference_path() -> PathConfig:
    """The published operations, fp32, torch's default AdamW, eager."""
    return PathConfig("reference")


def fast_path(device: torch.device, **overrides: Any) -> PathConfig:
    """The study's own step on ``device`` (single process, default settings, ``impl="fast"``:
    :meth:`mirl.study.step.StepOptions.for_study`): on CUDA bf16 + fused AdamW + channels-last +
    one CUDA graph; on CPU fp32 (bf16 autocast is slower on most CPUs) with fused AdamW.

    Example:
        >>> fast_path(torch.device("cuda")).describe()
        'fast+bf16+adamw-fused+channels_last+cuda_graph'
    """
    study = StepOptions.for_study(device, impl="fast")
    cfg = PathConfig("fast", "fast", amp=study.amp, optimizer="fused" if study.fused else "default",
                     channels_last=study.channels_last, cuda_graph=study.cuda_graph)
    cfg = dataclasses.replace(cfg, **overrides)
    if cfg.compile == "reduce-overhead":  # torch.compile brings its own CUDA graphs
        cfg = dataclasses.replace(cfg, cuda_graph=False)
    if cfg.cuda_graph and device.type != "cuda":
        cfg = dataclasses.replace(cfg, cuda_graph=False)
    return cfg


# ----------------------------------------------------------------------------------------- data


def make_batches(
    n: int, batch: int, patch: int, seed: int = 0, sigma: float = 25.0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` deterministic (noisy, clean) batches of ``patch`` x ``patch`` crops of the test
    photos, each crop flipped/rotated by one of the 7 non-identity transforms and given
    Gaussian noise of ``sigma`` (out of 255), clipped to [0, 1]. CPU float32 tensors."""
    rng = np.random.default_rng(seed)
    photos = [p for p in load_photos(max_images=8) if min(p.shape[:2]) >= patch]
    if not photos:
        raise ValueError(f"no test photo is at least {patch}x{patch}")
    out = []
    for _ in range(n):
        clean = np.empty((batch, patch, patch, 3), np.float32)
        for i in range(batch):
            img = photos[rng.integers(len(photos))]
            y = rng.integers(img.shape[0] - patch + 1)
            x = rng.integers(img.shape[1] - patch + 1)
            crop = img[y : y + patch, x : x + patch]
            mode = int(rng.integers(1, 8))
            crop = np.rot90(crop, k=mode % 4) if mode % 4 else crop
            clean[i] = crop[:, ::-1] if mode >= 4 else crop
        noisy = np.clip(clean + rng.standard_normal(clean.shape, dtype=np.float32) * (sigma / 255.0), 0, 1)
        to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
        out.append((to_t(noisy), to_t(clean)))
    return out


def stage(batches: Sequence[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copy every batch to ``device`` once, before timing."""
    return [(x.to(device), y.to(device)) for x, y in batches]


# -------------------------------------------------------------------------------------- trainer


class Trainer:
    """One training path: model, AdamW and ``step(x, y) -> loss`` (a detached 0-d tensor), the
    study's own step (:func:`mirl.study.step.build_train_step`: masks applied with fused
    multiplies, the whole step optionally one CUDA graph)."""

    def __init__(
        self,
        preset: str,
        path: PathConfig,
        device: torch.device,
        seed: int = 0,
        state_dict: dict[str, torch.Tensor] | None = None,
        masks: dict[str, torch.Tensor] | None = None,
        lr: float = LR,
        weight_decay: float = WEIGHT_DECAY,
    ) -> None:
        torch.manual_seed(seed)
        self.path, self.device = path, device
        model: PromptIR = build_model(preset, impl=path.impl)
        if state_dict is not None:
            model.load_state_dict(state_dict)
        self.model = model.to(device)
        self.step = build_train_step(self.model, masks, device, path.options(), lr=lr, weight_decay=weight_decay)
        self.optimizer = self.step.optimizer


# ------------------------------------------------------------------------------------ measuring


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def random_masks(preset: str, density: float, seed: int = 0, rule: str = "upstream") -> dict[str, torch.Tensor]:
    """Random 0/1 masks keeping ``density`` of every prunable tensor (the study's
    :func:`mirl.pruning.rules.prunable_names` under ``rule``).

    Example:
        >>> masks = random_masks("tiny", 0.5)
        >>> "output.weight" in masks
        True
    """
    g = torch.Generator().manual_seed(seed)
    model = build_model(preset)
    state = model.state_dict()
    names = prunable_names(state, rule, unused=model.unused_in_forward)
    return {n: (torch.rand(state[n].shape, generator=g) < density).float() for n in names}


def time_path(
    preset: str,
    path: PathConfig,
    device: torch.device,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    warmup: int,
    seed: int = 0,
    state_dict: dict[str, torch.Tensor] | None = None,
    masks: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Throughput of one path: ``warmup`` untimed steps (the first one timed separately as
    ``first_step_s``: compilation / graph capture), then ``steps`` timed steps.

    On CUDA the timed steps run back to back (total time / steps); on CPU each step is timed
    and the median is used, which resists other processes on a shared machine."""
    batch = batches[0][0].shape[0]
    with PeakMemory(device) as warm_mem:  # construction, first step (capture, compilation), warm-up
        trainer = Trainer(preset, path, device, seed, state_dict=state_dict, masks=masks)
        sync(device)
        start = time.perf_counter()
        trainer.step(*batches[0])
        sync(device)
        first = time.perf_counter() - start
        for i in range(1, max(1, warmup)):
            trainer.step(*batches[i % len(batches)])
        sync(device)
        warm = time.perf_counter() - start
    with PeakMemory(device) as mem:  # the timed steps alone: the steady state of a long run
        times = []
        start = time.perf_counter()
        for i in range(steps):
            loss = trainer.step(*batches[i % len(batches)])
            if device.type != "cuda":
                times.append(time.perf_counter() - start)
                start = time.perf_counter()
        sync(device)
        elapsed = time.perf_counter() - start if device.type == "cuda" else statistics.median(times) * steps
        final_loss = float(loss)
    del trainer
    _free(device)
    ms = elapsed / steps * 1e3
    return {
        "path": path.name,
        "config": path.describe(),
        "ms_per_step": ms,
        "images_per_s": batch * steps / elapsed,
        "peak_mem_gib": max(mem.peak_gib, warm_mem.peak_gib),
        "steady_peak_mem_gib": mem.peak_gib,
        "first_step_s": first,
        "warmup_s": warm,
        "final_loss": final_loss,
        "steps": steps,
    }


def loss_curves(
    preset: str,
    fast: PathConfig,
    device: torch.device,
    steps: int,
    batch: int,
    patch: int,
    seed: int = 0,
    smooth: int = 20,
) -> dict[str, Any]:
    """Train the reference and the fast path ``steps`` steps from the same weights on the same
    batches; return both loss curves and their differences (raw and ``smooth``-step means).

    When the fast path trains in bf16, a control curve follows: the fast path in fp32, the same
    maths as the reference in another order of float operations. How far it drifts from the
    reference is the noise floor against which the bf16 curve's drift is judged."""
    batches = stage(make_batches(steps, batch, patch, seed=seed + 1), device)
    torch.manual_seed(seed)
    init = {k: v.clone() for k, v in build_model(preset).state_dict().items()}
    curves: dict[str, list[float]] = {}
    trained: dict[str, torch.Tensor] = {}
    control = [dataclasses.replace(fast, name="fast fp32", amp=False)] if fast.amp else []
    for path in [reference_path(), fast, *control]:
        trainer = Trainer(preset, path, device, seed, state_dict=init)
        losses = torch.stack([trainer.step(x, y) for x, y in batches])
        curves[path.name] = losses.float().cpu().tolist()
        if path.name == "fast":
            trained = {k: v.detach().float().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
        del trainer
        _free(device)
    ref, fst = np.array(curves["reference"]), np.array(curves["fast"])
    k = max(1, min(smooth, steps))
    kernel = np.ones(k) / k
    ref_s, fst_s = np.convolve(ref, kernel, "valid"), np.convolve(fst, kernel, "valid")

    def drift(smoothed: np.ndarray) -> float:  # largest relative distance from the reference
        return float(np.max(np.abs(ref_s - smoothed) / np.abs(ref_s)))

    extra: dict[str, Any] = {}
    if control:
        extra = {"fast fp32": curves["fast fp32"],
                 "control_max_rel_diff_smoothed": drift(np.convolve(np.array(curves["fast fp32"]), kernel, "valid"))}
    return {
        "preset": preset,
        "batch": batch,
        "patch": patch,
        "steps": steps,
        "fast_config": fast.describe(),
        "reference": curves["reference"],
        "fast": curves["fast"],
        "max_abs_diff": float(np.abs(ref - fst).max()),
        "smooth_steps": k,
        "max_rel_diff_smoothed": drift(fst_s),
        "first_loss": float(ref[0]),
        "last_smoothed": {"reference": float(ref_s[-1]), "fast": float(fst_s[-1])},
        **extra,
        "_trained_fast_state": trained,  # for the inference check in gpu_all; not written to JSON
    }


def profile_step(preset: str, batch: int, patch: int, device: torch.device, steps: int = 2, seed: int = 0,
                 top: int = 30) -> dict[str, Any]:
    """Where the fast path's time goes: ``steps`` eager steps (no CUDA graph, so each kernel is
    attributed to its operator) under ``torch.profiler``, the ``top`` operators by self device
    time, as rows and as torch's printed table."""
    from torch.profiler import ProfilerActivity, profile

    path = dataclasses.replace(fast_path(device), cuda_graph=False)
    batches = stage(make_batches(2, batch, patch, seed=seed + 1), device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    trainer = Trainer(preset, path, device, seed)
    for x, y in batches * 2:  # warm-up
        trainer.step(x, y)
    sync(device)
    with profile(activities=activities) as prof:
        for i in range(steps):
            trainer.step(*batches[i % len(batches)])
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    rows = sorted(averages, key=lambda e: getattr(e, key, 0), reverse=True)[:top]
    total = sum(getattr(e, key, 0) for e in averages)
    del trainer
    _free(device)
    return {"preset": preset, "batch": batch, "patch": patch, "config": path.describe(), "steps": steps,
            "total_ms_per_step": total / 1e3 / steps,
            "top": [{"op": e.key, "ms_per_step": getattr(e, key, 0) / 1e3 / steps, "calls_per_step": e.count / steps,
                     "share": getattr(e, key, 0) / total if total else 0.0} for e in rows],
            "table": averages.table(sort_by=key, row_limit=top, max_name_column_width=60)}


def plot_curves(result: dict[str, Any], path: str) -> bool:
    """Plot both loss curves to ``path`` (PNG); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(result["reference"], label="reference (fp32)", lw=1)
    ax.plot(result["fast"], label=f"fast ({result['fast_config']})", lw=1, alpha=0.8)
    if "fast fp32" in result:
        ax.plot(result["fast fp32"], label="fast in fp32 (control: float reordering only)", lw=1, alpha=0.6)
    ax.set_xlabel("step")
    ax.set_ylabel("L1 loss")
    ax.set_title(f"{result['preset']}, batch {result['batch']}, {result['patch']}x{result['patch']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def run(
    preset: str = "small",
    batch: int = 8,
    patch: int = 64,
    device: str | torch.device = "auto",
    steps: int | None = None,
    warmup: int = 3,
    seed: int = 0,
    compile: str = "none",
    amp: bool | None = None,
    channels_last: bool | None = None,
    cuda_graph: bool | None = None,
    optimizer: str | None = None,
    mask_density: float | None = None,
    include_reference: bool = True,
    compile_memory_budget: float | None = None,
) -> dict[str, Any]:
    """Time the reference and the fast path; returns rows and fast/reference ratios."""
    dev = pick_device(device) if isinstance(device, str) else device
    if steps is None:
        steps = 10 if dev.type == "cuda" else 3
    overrides = {
        k: v
        for k, v in dict(amp=amp, channels_last=channels_last, cuda_graph=cuda_graph, optimizer=optimizer,
                         compile_memory_budget=compile_memory_budget).items()
        if v is not None
    }
    fast = fast_path(dev, compile=compile, **overrides)
    batches = stage(make_batches(min(steps + warmup, 8), batch, patch, seed=seed + 1), dev)
    masks = random_masks(preset, mask_density, seed) if mask_density else None
    torch.manual_seed(seed)
    init = build_model(preset).state_dict()
    rows = []
    for path in ([reference_path()] if include_reference else []) + [fast]:
        rows.append(time_path(preset, path, dev, batches, steps, warmup, seed, state_dict=init, masks=masks))
    result: dict[str, Any] = {
        "benchmark": "train",
        "preset": preset,
        "batch": batch,
        "patch": patch,
        "masked": bool(masks),
        "env": env_info(dev),
        "rows": rows,
    }
    if include_reference:
        ref, fst = rows[0], rows[-1]
        result["speedup"] = fst["images_per_s"] / ref["images_per_s"]
        for key, ratio in (("peak_mem_gib", "memory_ratio"), ("steady_peak_mem_gib", "steady_memory_ratio")):
            result[ratio] = fst[key] / ref[key] if ref[key] > 0 else math.nan
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line entry point; prints a table and returns the result dict."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", choices=("tiny", "small", "paper"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", default="none", choices=COMPILE_MODES)
    p.add_argument("--compile-memory-budget", type=float, default=None,
                   help="with --compile regional: fraction (0, 1] of the compiler's default activations to keep")
    p.add_argument("--amp", default=None, choices=("auto", "on", "off"), help="bf16 autocast (auto: on for CUDA)")
    p.add_argument("--no-cuda-graph", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--optimizer", default=None, choices=("default", "fused"))
    p.add_argument("--mask-density", type=float, default=None, help="train with random masks of this density")
    p.add_argument("--loss-curve", type=int, default=0, metavar="N", help="also record both loss curves for N steps")
    p.add_argument("--curve-out", default="loss_curve", help="file stem for the curve's .json and .png")
    add_common_args(p)
    args = p.parse_args(argv)
    amp = {"on": True, "off": False}.get(args.amp or "auto")
    result = run(
        args.preset,
        args.batch,
        args.patch,
        args.device,
        args.steps,
        args.warmup,
        args.seed,
        compile=args.compile,
        amp=amp,
        channels_last=False if args.no_channels_last else None,
        cuda_graph=False if args.no_cuda_graph else None,
        optimizer=args.optimizer,
        mask_density=args.mask_density,
        compile_memory_budget=args.compile_memory_budget,
    )
    print(f"train: preset {args.preset}, batch {args.batch}, {args.patch}x{args.patch}, {result['env']['device']}")
    print(format_table(result["rows"], ["path", "images_per_s", "ms_per_step", "peak_mem_gib", "first_step_s", "config"]))
    print(f"speedup {result['speedup']:.2f}x, memory ratio {result['memory_ratio']:.2f}")
    if args.loss_curve:
        dev = pick_device(args.device)
        fast = fast_path(dev, compile=args.compile, **({"amp": amp} if amp is not None else {}))
        curve = loss_curves(args.preset, fast, dev, args.loss_curve, args.batch, args.patch, args.seed)
        curve.pop("_trained_fast_state")
        write_json(args.curve_out + ".json", curve)
        png = plot_curves(curve, args.curve_out + ".png")
        print(
            f"loss curves ({args.loss_curve} steps): max |diff| {curve['max_abs_diff']:.3g}, "
            f"max rel diff of {curve['smooth_steps']}-step means {curve['max_rel_diff_smoothed']:.3g}; "
            f"wrote {args.curve_out}.json" + (" and .png" if png else "")
        )
        result["loss_curve"] = {k: v for k, v in curve.items() if k not in ("reference", "fast")}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
