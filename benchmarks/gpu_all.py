"""Every GPU measurement of issue 6 in one run of a few minutes, with a summary table.

Stages, most important first (each writes the JSON again when done, so a timeout keeps what
finished; ``--budget-s`` skips the stages that would start after that many seconds):
0. the study loop itself: ``mirl lottery --preset smoke`` on the device (bf16 autocast, fused
   AdamW, masked training, evaluation), with its CUDA-graph step and again without it;
1. training throughput, paper preset, batch 8 / 64x64 and batch 32 / 128x128, fast vs reference;
2. ``torch.compile`` (regional: each transformer block) on the fast path: 32/128 with the
   compiler's default and with an activation memory budget, then 8/64 with the budget: warm-up,
   throughput and memory against the fast path without it and the reference, break-even steps;
3. loss curves, first 200 steps on the same data, fast (bf16) vs reference (fp32), JSON + PNG;
4. one global pruning step of the paper model, on the GPU and on the CPU, vs numpy;
5. inference fp32 vs bf16 (PSNR on the test photos with the step-200 weights, latency) and tiled
   restoration of a 4096x4096 image within a memory budget;
6. training with random masks (density 0.2), batch 8 / 64x64;
7. ablation: the fast path with one ingredient removed at a time, both sizes;
8. a ``torch.profiler`` table of the fast step at the larger size (eager, per operator).

On a machine without CUDA (or with ``--tiny``) every stage runs with tiny sizes, to prove the
script works. Needs only torch, numpy, scikit-image (+ matplotlib for the PNG).

Example:
    python3 -m benchmarks.gpu_all --out $OUT/gpu_all.json
    python -m benchmarks.gpu_all --device cpu --out /tmp/gpu_all_tiny.json
"""

from __future__ import annotations

import argparse
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from benchmarks import inference, pruning, train
from benchmarks.common import env_info, format_table, pick_device, write_json

TARGETS = {
    "train_speedup": 3.0,  # fast/reference images/s
    "train_memory_ratio": 0.5,  # fast/reference peak memory
    "prune_gpu_ms": 50.0,
    "prune_cpu_fraction_of_numpy": 0.2,
    "bf16_psnr_delta_db": 0.05,
    "loss_curve_rel_tol": 0.02,  # smoothed loss curves, relative
}


# The compile stage's activation memory budget (mirl.study.step.compile_blocks): 0.7 kept
# fewer activations than the eager fast path on the CPU (18 against 19 of a block's width).
COMPILE_MEMORY_BUDGET = 0.7

# The fast path with one ingredient taken out at a time (train.run overrides).
ABLATIONS: dict[str, dict[str, Any]] = {
    "fast (all)": {},
    "without cuda_graph": {"cuda_graph": False},
    "without channels_last": {"channels_last": False},
    "without bf16": {"amp": False},
}


def sizes(tiny: bool) -> dict[str, Any]:
    """Workload sizes: the issue's on a GPU, tiny ones for a CPU smoke run."""
    if tiny:
        return {"preset": "tiny", "train": [(2, 32), (2, 48)], "steps": 2, "warmup": 1, "curve_steps": 6,
                "curve_batch": 2, "curve_patch": 32, "prune_preset": "tiny", "inf": dict(sizes=[(32, 48)], max_side=48,
                tiled_size=96, tile=48, iters=1), "budget_gib": None}
    return {"preset": "paper", "train": [(8, 64), (32, 128)], "steps": 10, "warmup": 3, "curve_steps": 200,
            "curve_batch": 8, "curve_patch": 64, "prune_preset": "paper", "inf": dict(sizes=[(320, 480), (1024, 1024)],
            max_side=512, tiled_size=4096, tile=512, iters=10), "budget_gib": 8.0}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every stage; print the summary table; return the results."""
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.gpu_all", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", default="gpu_all.json", help="JSON results (the loss-curve PNG goes beside it)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes even on a GPU")
    p.add_argument("--skip", action="append", default=[], help="skip a stage: study_smoke, train, compile, curve, prune, inference, masked, ablation, profile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curve-steps", type=int, default=None, help="loss-curve steps (default 200 on a GPU)")
    p.add_argument("--budget-s", type=float, default=None, help="start no stage after this many seconds")
    args = p.parse_args(argv)
    dev = pick_device(args.device)
    tiny = args.tiny or dev.type != "cuda"
    cfg = sizes(tiny)
    if args.curve_steps:
        cfg["curve_steps"] = args.curve_steps
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"env": env_info(dev), "tiny": tiny, "targets": TARGETS, "stages": {}, "errors": {}}
    trained: dict[str, torch.Tensor] | None = None
    t_all = time.perf_counter()

    def stage(name: str, fn: Callable[[], Any]) -> None:
        if name in args.skip or name.split("_")[0] in args.skip:
            return
        if args.budget_s is not None and time.perf_counter() - t_all > args.budget_s:
            res.setdefault("skipped_for_time", []).append(name)
            write_json(out, res)
            return
        start = time.perf_counter()
        print(f"== {name} ...", flush=True)
        try:
            res["stages"][name] = fn()
        except Exception as exc:  # keep going: one failing stage must not lose the others
            res["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        res.setdefault("stage_seconds", {})[name] = round(time.perf_counter() - start, 1)
        print(f"== {name} done in {res['stage_seconds'][name]} s", flush=True)
        write_json(out, res)

    def study_smoke() -> dict[str, Any]:
        import tempfile

        from mirl.study.lottery import run_study
        from mirl.analysis.results import levels, load_metrics

        runs: dict[str, Any] = {}
        for graph in ("auto", "off"):  # the CUDA-graph step must learn what the eager step learns
            with tempfile.TemporaryDirectory() as tmp:
                run = run_study("smoke", {"device": dev.type, "progress": False, "cuda_graph": graph}, out=tmp)
                metrics = [load_metrics(run, k) for k in levels(run)]
            runs[graph] = {"levels": len(metrics), "mean_psnr": [m["mean_psnr"] for m in metrics],
                           "level_seconds": [m["train"].get("level_seconds") for m in metrics],
                           "execution": [m["train"].get("execution") for m in metrics]}
        result = dict(runs["auto"])
        result["eager"] = runs["off"]
        result["max_psnr_diff_graph_vs_eager"] = max(
            (abs(a - b) for a, b in zip(runs["auto"]["mean_psnr"], runs["off"]["mean_psnr"])), default=float("nan"))
        return result

    stage("study_smoke", study_smoke)

    preset = cfg["preset"]
    for batch, patch in cfg["train"]:
        stage(f"train_b{batch}_p{patch}", lambda b=batch, q=patch: train.run(
            preset, b, q, dev, cfg["steps"], cfg["warmup"], args.seed))
    b0, p0 = cfg["train"][0]

    def compiled() -> dict[str, Any]:
        rows = []
        (b_small, p_small), (b_large, p_large) = cfg["train"]
        # the larger size first, since it is the one short of 3x: the compiler's own choice of
        # what to keep, then with a memory budget (it keeps more than the eager fast path by
        # default); then the smaller size, whose memory target is the tighter one
        runs = [(b_large, p_large, 1.0), (b_large, p_large, COMPILE_MEMORY_BUDGET), (b_small, p_small, COMPILE_MEMORY_BUDGET)]
        for batch, patch, budget in runs:
            if rows and args.budget_s is not None and time.perf_counter() - t_all > args.budget_s:
                res.setdefault("skipped_for_time", []).append(f"compile b{batch}/p{patch} budget {budget}")
                break
            r = train.run(preset, batch, patch, dev, cfg["steps"], cfg["warmup"], args.seed, compile="regional",
                          include_reference=False, compile_memory_budget=budget)
            row = {"size": f"b{batch}/p{patch}", "memory_budget": budget, **r["rows"][0]}
            base = res["stages"].get(f"train_b{batch}_p{patch}") or {}
            if base.get("rows"):
                ref, fast = base["rows"][0], base["rows"][-1]
                gain_s = (fast["ms_per_step"] - row["ms_per_step"]) / 1e3
                row["fast_ms_per_step"] = fast["ms_per_step"]
                row["speedup_vs_reference"] = row["images_per_s"] / ref["images_per_s"]
                row["memory_ratio_vs_reference"] = row["peak_mem_gib"] / ref["peak_mem_gib"]
                row["steady_memory_ratio_vs_reference"] = (row["steady_peak_mem_gib"] / ref["steady_peak_mem_gib"]
                                                           if ref["steady_peak_mem_gib"] > 0 else float("nan"))
                row["extra_warmup_s"] = row["warmup_s"] - fast["warmup_s"]
                row["breakeven_steps"] = row["extra_warmup_s"] / gain_s if gain_s > 0 else None
                row["steps_per_round"] = train.SAMPLES_PER_EPOCH * train.EPOCHS_PER_ROUND // batch
            rows.append(row)
            res["stages"]["compile"] = {"rows": rows}  # each run is kept if a later one is cut off
            write_json(out, res)
        return {"rows": rows}

    stage("compile", compiled)  # right after the plain fast path, which it is compared with

    def curve() -> dict[str, Any]:
        nonlocal trained
        c = train.loss_curves(preset, train.fast_path(dev), dev, cfg["curve_steps"], cfg["curve_batch"],
                              cfg["curve_patch"], args.seed)
        trained = c.pop("_trained_fast_state")
        c["png"] = str(out.with_name(out.stem + "_loss_curve.png")) if train.plot_curves(
            c, str(out.with_name(out.stem + "_loss_curve.png"))) else None
        return c

    stage("curve", curve)

    stage("prune_device", lambda: pruning.run(cfg["prune_preset"], dev, iters=None, seed=args.seed))
    if dev.type == "cuda":
        stage("prune_cpu", lambda: pruning.run(cfg["prune_preset"], torch.device("cpu"), iters=1, seed=args.seed))
    stage("inference", lambda: inference.run(preset, dev, trained, mem_budget_gib=cfg["budget_gib"],
                                            seed=args.seed, **cfg["inf"]))
    stage("masked", lambda: train.run(preset, b0, p0, dev, cfg["steps"], cfg["warmup"], args.seed, mask_density=0.2))

    def ablation() -> dict[str, Any]:
        rows = []
        for batch, patch in cfg["train"]:
            for label, overrides in ABLATIONS.items():
                r = train.run(preset, batch, patch, dev, cfg["steps"], cfg["warmup"], args.seed, include_reference=False,
                              **overrides)
                rows.append({"size": f"b{batch}/p{patch}", "variant": label, **r["rows"][0]})
        return {"rows": rows}

    stage("ablation", ablation)

    def profile() -> dict[str, Any]:
        b, q = cfg["train"][-1]
        return train.profile_step(preset, b, q, dev, seed=args.seed)

    stage("profile", profile)

    res["total_seconds"] = round(time.perf_counter() - t_all, 1)
    res["summary"] = summarise(res)
    write_json(out, res)
    print()
    print(format_table(res["summary"], ["check", "value", "target", "pass"]))
    if res["errors"]:
        print("errors:", res["errors"])
    print(f"total {res['total_seconds']} s; wrote {out}")
    return res


def summarise(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target of the issue: measured value, target, pass/fail."""
    s, rows = res["stages"], []

    def add(check: str, value: Any, target: str, ok: bool | None) -> None:
        rows.append({"check": check, "value": value, "target": target, "pass": "-" if ok is None else ("yes" if ok else "NO")})

    if s.get("study_smoke"):
        smoke = s["study_smoke"]
        add("study loop (smoke) levels / s per level", f"{smoke['levels']} / {smoke['level_seconds']}", "3 levels", smoke["levels"] == 3)
        graphs = [bool(e and e.get("cuda_graph")) for e in smoke.get("execution", [])]
        on_cuda = str(res["env"].get("device", "")).startswith("cuda")
        add("study loop used the CUDA graph (per level)", str(graphs), "all True on CUDA",
            all(graphs) if graphs and on_cuda else None)
        add("study loop eager s per level", str(smoke["eager"]["level_seconds"]), "(cuda_graph=off)", None)
        add("study loop |mean PSNR| graph vs eager dB", round(smoke["max_psnr_diff_graph_vs_eager"], 3), "(same learning)", None)
    for name, r in s.items():
        if name.startswith("train_") and r:
            ref, fast = r["rows"][0], r["rows"][-1]
            add(f"{name} images/s ref -> fast", f"{ref['images_per_s']:.1f} -> {fast['images_per_s']:.1f}", "", None)
            add(f"{name} speedup", round(r["speedup"], 2), f">= {TARGETS['train_speedup']}", r["speedup"] >= TARGETS["train_speedup"])
            add(f"{name} memory ratio", round(r["memory_ratio"], 2), f"<= {TARGETS['train_memory_ratio']}",
                r["memory_ratio"] <= TARGETS["train_memory_ratio"])
            add(f"{name} GiB ref -> fast (timed steps only)",
                f"{ref['steady_peak_mem_gib']:.2f} -> {fast['steady_peak_mem_gib']:.2f} ({r['steady_memory_ratio']:.2f})",
                "(without warm-up/capture)", None)
    if s.get("ablation"):
        for row in s["ablation"]["rows"]:
            add(f"ablation {row['size']} {row['variant']} images/s", round(row["images_per_s"], 1),
                f"peak {row['peak_mem_gib']:.2f} GiB", None)
    if s.get("masked"):
        add("masked training speedup", round(s["masked"]["speedup"], 2), "(info)", None)
    if s.get("curve"):
        c = s["curve"]
        # bf16 passes within the tolerance, or when it drifts no further from the reference than
        # the fp32 control (same maths, other float order) does
        floor = c.get("control_max_rel_diff_smoothed")
        bound = max(TARGETS["loss_curve_rel_tol"], floor or 0.0)
        add(f"loss curve {c['steps']} steps, rel diff ({c['smooth_steps']}-step mean)", round(c["max_rel_diff_smoothed"], 4),
            f"<= max({TARGETS['loss_curve_rel_tol']}, fp32 control)", c["max_rel_diff_smoothed"] <= bound)
        if floor is not None:
            add("loss curve fp32 control rel diff (noise floor)", round(floor, 4), "(float reordering only)", None)
    for row in (s.get("compile") or {}).get("rows", []):
        name = f"compile (regional) {row['size']} budget {row.get('memory_budget', 1.0):g}"
        add(f"{name} first step s / ms per step", f"{row['first_step_s']:.1f} / {row['ms_per_step']:.1f}",
            f"(fast without: {row.get('fast_ms_per_step', float('nan')):.1f} ms)", None)
        if "speedup_vs_reference" in row:
            add(f"{name} speedup / memory ratio (timed steps only)",
                f"{row['speedup_vs_reference']:.2f} / {row['memory_ratio_vs_reference']:.2f} "
                f"({row['steady_memory_ratio_vs_reference']:.2f})",
                f">= {TARGETS['train_speedup']} / <= {TARGETS['train_memory_ratio']}",
                row["speedup_vs_reference"] >= TARGETS["train_speedup"] and row["memory_ratio_vs_reference"] <= TARGETS["train_memory_ratio"])
            be = row["breakeven_steps"]
            add(f"{name} break-even steps", "never" if be is None else round(be), f"<= {row['steps_per_round']} (1 round)",
                be is not None and be <= row["steps_per_round"])
    for key, label in (("prune_device", "device"), ("prune_cpu", "cpu")):
        if s.get(key):
            r = {row["impl"]: row for row in s[key]["rows"]}
            numpy_ms = r["numpy (published)"]["ms"]
            best = min((row for n, row in r.items() if n.startswith("torch")), key=lambda row: row["ms"])
            add(f"prune {label}: numpy ms -> best torch ms ({best['impl']})", f"{numpy_ms:.0f} -> {best['ms']:.1f}", "", None)
            if s[key]["env"]["device"].startswith("cuda"):
                add("prune GPU ms", round(best["ms"], 1), f"< {TARGETS['prune_gpu_ms']}", best["ms"] < TARGETS["prune_gpu_ms"])
            else:
                frac = best["ms"] / numpy_ms
                add("prune CPU torch/numpy time", round(frac, 3), f"<= {TARGETS['prune_cpu_fraction_of_numpy']}",
                    frac <= TARGETS["prune_cpu_fraction_of_numpy"])
            add(f"prune {label}: kept-count diff vs numpy", str(s[key]["mask_disagreements_vs_numpy"]), "0", None)
    if s.get("inference"):
        i = s["inference"]
        d = i["psnr"]["max_abs_delta_db"]
        add("bf16 max |dPSNR| dB" + ("" if i["trained_weights"] else " (untrained)"), round(d, 4),
            f"<= {TARGETS['bf16_psnr_delta_db']}", d <= TARGETS["bf16_psnr_delta_db"])
        for row in i["latency"]:
            add(f"infer {row['size']} {row['path']} ms", round(row["ms"], 1), f"peak {row['peak_mem_gib']:.2f} GiB", None)
        t = i["tiled"]
        add(f"tiled {t['size']}^2 s / peak GiB", f"{t['seconds']:.1f} / {t['peak_mem_gib']:.2f}",
            f"budget {t['budget_gib']}", t.get("within_budget"))
    return rows


if __name__ == "__main__":
    main()
