"""Inference: fp32 against bf16 (latency, peak memory, PSNR on real photos) and tiled
restoration of a large image within a memory budget.

* PSNR: the built-in test photos (``mirl.data.corpus``, else scikit-image's bundled photos),
  centre-cropped to a multiple of 16 and given Gaussian noise (sigma 25, seeded); the
  reference path (``impl="reference"``, fp32) and the fast path (``impl="fast"``, bf16
  autocast, channels-last on CUDA) restore each; the PSNR difference per photo is reported.
  Untrained weights unless a checkpoint or state dict is given (``gpu_all`` passes the weights
  of its 200-step loss-curve run).
* Latency: one image per size, reference fp32 / fast fp32 / fast bf16.
* Tiled: ``mirl.scoring.restore.restore_image`` with ``--tile``/``--overlap`` on a ``--tiled-size``
  square image; peak device memory is checked against ``--mem-budget-gib``.

Example:
    python -m benchmarks.inference --preset paper --device cuda --tiled-size 4096
    python -m benchmarks.inference --preset tiny --device cpu
"""

from __future__ import annotations

import argparse
import contextlib
import gc
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from benchmarks.common import (
    GIB,
    PeakMemory,
    add_common_args,
    env_info,
    format_table,
    load_photos,
    pick_device,
    sync,
    time_fn,
    write_json,
)
from mirl.scoring.metrics import psnr
from mirl.models import build_model
from mirl.models.promptir import PromptIR


def _channels_last(model: PromptIR) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)


def make_models(
    preset: str, device: torch.device, state_dict: dict[str, torch.Tensor] | None = None, seed: int = 0
) -> tuple[PromptIR, PromptIR]:
    """Reference and fast models with the same weights, in eval mode on ``device``."""
    torch.manual_seed(seed)
    ref = build_model(preset, impl="reference")
    if state_dict is not None:
        ref.load_state_dict(state_dict)
    fast = build_model(preset, impl="fast")
    fast.load_state_dict(ref.state_dict())
    ref, fast = ref.to(device).eval(), fast.to(device).eval()
    if device.type == "cuda":
        _channels_last(fast)
    return ref, fast


@contextlib.contextmanager
def precision(device: torch.device, bf16: bool) -> Iterator[None]:
    """``inference_mode`` plus bf16 autocast when ``bf16``."""
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        yield


def _prep(x: torch.Tensor, model: PromptIR) -> torch.Tensor:
    if model.impl == "fast" and next(model.parameters()).is_contiguous(memory_format=torch.channels_last):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def restore(model: PromptIR, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """One forward pass; float32 output clamped to [0, 1]."""
    with precision(x.device, bf16):
        return model(_prep(x, model)).float().clamp_(0, 1)


def psnr_check(
    ref: PromptIR, fast: PromptIR, device: torch.device, max_side: int, n_photos: int = 4, seed: int = 0, sigma: float = 25.0
) -> dict[str, Any]:
    """PSNR of reference-fp32 and fast-bf16 outputs against the clean photos."""
    rows = []
    for i, photo in enumerate(load_photos(n_photos)):
        h, w = (min(s, max_side) // 16 * 16 for s in photo.shape[:2])
        y0, x0 = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
        clean = photo[y0 : y0 + h, x0 : x0 + w]
        rng = np.random.default_rng(seed + i)
        noisy = np.clip(clean + rng.standard_normal(clean.shape).astype(np.float32) * sigma / 255.0, 0, 1)
        x = torch.from_numpy(np.ascontiguousarray(noisy.transpose(2, 0, 1)))[None].to(device)
        outs = {}
        for name, model, bf16 in (("fp32", ref, False), ("bf16", fast, True)):
            outs[name] = restore(model, x, bf16)[0].permute(1, 2, 0).cpu().numpy()
        p32, p16 = psnr(clean, outs["fp32"]), psnr(clean, outs["bf16"])
        rows.append(
            {"photo": i, "size": f"{h}x{w}", "psnr_noisy": psnr(clean, noisy), "psnr_fp32": p32,
             "psnr_bf16": p16, "delta_db": p16 - p32, "psnr_bf16_vs_fp32": psnr(outs["fp32"], outs["bf16"])}
        )
    return {"rows": rows, "max_abs_delta_db": max(abs(r["delta_db"]) for r in rows)}


def latency(
    ref: PromptIR, fast: PromptIR, device: torch.device, sizes: Sequence[tuple[int, int]], iters: int
) -> list[dict[str, Any]]:
    """Latency and peak memory per size: reference fp32, fast fp32, fast bf16."""
    rows = []
    for h, w in sizes:
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w)).to(device)
        for name, model, bf16 in (("reference fp32", ref, False), ("fast fp32", fast, False), ("fast bf16", fast, True)):
            gc.collect()
            with PeakMemory(device) as mem:
                t = time_fn(lambda: restore(model, x, bf16), device, warmup=1, iters=iters)
            rows.append({"size": f"{h}x{w}", "path": name, "ms": t["median_ms"], "peak_mem_gib": mem.peak_gib})
        base = rows[-3]["ms"]
        for r in rows[-3:]:
            r["speedup"] = base / r["ms"]
    return rows


def tiled(
    fast: PromptIR, device: torch.device, size: int, tile: int, overlap: int, bf16: bool, budget_gib: float | None
) -> dict[str, Any]:
    """Restore one ``size`` x ``size`` image with ``mirl.scoring.restore.restore_image`` in tiles."""
    from mirl.scoring.restore import restore_image

    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(size))
    sync(device)
    with PeakMemory(device) as mem, precision(device, bf16):
        t = time_fn(lambda: restore_image(fast, image, tile=tile, overlap=overlap), device, warmup=0, iters=1)
    result = {
        "size": size,
        "tile": tile,
        "overlap": overlap,
        "bf16": bf16,
        "seconds": t["median_ms"] / 1e3,
        "peak_mem_gib": mem.peak_gib,
        "budget_gib": budget_gib,
    }
    if budget_gib is not None:
        result["within_budget"] = mem.peak_gib <= budget_gib
    return result


def tiled_matches_untiled(fast: PromptIR, device: torch.device, size: int, tile: int, overlap: int) -> float:
    """Max |tiled - untiled| (fp32) on a ``size`` x ``size`` photo crop: the seam error."""
    from mirl.scoring.restore import restore_image

    photo = load_photos(1, min_side=size)[0][:size, :size]
    image = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))
    with torch.inference_mode():
        full = restore_image(fast, image)
        tiles = restore_image(fast, image, tile=tile, overlap=overlap)
    return float((full - tiles).abs().max())


def run(
    preset: str = "tiny",
    device: str | torch.device = "auto",
    state_dict: dict[str, torch.Tensor] | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    max_side: int | None = None,
    tiled_size: int | None = None,
    tile: int | None = None,
    overlap: int = 32,
    mem_budget_gib: float | None = None,
    iters: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """All inference measurements; CPU defaults are small, CUDA defaults are the issue's sizes."""
    dev = pick_device(device) if isinstance(device, str) else device
    gpu = dev.type == "cuda"
    sizes = sizes or ([(320, 480), (1024, 1024)] if gpu else [(64, 96)])
    max_side = max_side or (512 if gpu else 96)
    tiled_size = tiled_size or (4096 if gpu else 192)
    tile = tile or (512 if gpu else 96)
    overlap = min(overlap, tile // 4)
    iters = iters or (10 if gpu else 2)
    ref, fast = make_models(preset, dev, state_dict, seed)
    result: dict[str, Any] = {"benchmark": "inference", "preset": preset, "env": env_info(dev),
                              "trained_weights": state_dict is not None}
    result["psnr"] = psnr_check(ref, fast, dev, max_side, seed=seed)
    result["latency"] = latency(ref, fast, dev, sizes, iters)
    del ref
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
    result["tiled"] = tiled(fast, dev, tiled_size, tile, overlap, bf16=gpu, budget_gib=mem_budget_gib)
    seam_tile = min(tile, 256)  # two tiles across must fit inside a corpus photo
    result["tiled_seam_max_abs"] = tiled_matches_untiled(fast, dev, 2 * seam_tile, seam_tile, min(overlap, seam_tile // 4))
    return result


def print_result(result: dict[str, Any]) -> None:
    """Human-readable tables."""
    print(f"inference: preset {result['preset']}, {result['env']['device']}, trained weights: {result['trained_weights']}")
    print(format_table(result["psnr"]["rows"]))
    print(f"max |PSNR(bf16 fast) - PSNR(fp32 reference)| = {result['psnr']['max_abs_delta_db']:.4f} dB")
    print(format_table(result["latency"]))
    t = result["tiled"]
    print(
        f"tiled {t['size']}x{t['size']} (tile {t['tile']}, overlap {t['overlap']}, bf16 {t['bf16']}): "
        f"{t['seconds']:.2f} s, peak {t['peak_mem_gib']:.2f} GiB"
        + (f", budget {t['budget_gib']} GiB: {'OK' if t['within_budget'] else 'EXCEEDED'}" if t["budget_gib"] else "")
    )
    print(f"tiled vs untiled max |diff| (fp32): {result['tiled_seam_max_abs']:.3g}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line entry point; prints tables and returns the result dict."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny", choices=("tiny", "small", "paper"))
    p.add_argument("--checkpoint", default=None, help="weights to load (any format mirl.models.load_checkpoint reads)")
    p.add_argument("--size", action="append", default=None, help="HxW latency size (repeatable)")
    p.add_argument("--max-side", type=int, default=None, help="crop photos to at most this side for PSNR")
    p.add_argument("--tiled-size", type=int, default=None)
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--mem-budget-gib", type=float, default=None)
    p.add_argument("--iters", type=int, default=None)
    add_common_args(p)
    args = p.parse_args(argv)
    state = None
    if args.checkpoint:
        from mirl.models import load_checkpoint

        loaded = load_checkpoint(args.checkpoint, config=args.preset)
        state = (loaded[0] if isinstance(loaded, tuple) else loaded).state_dict()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.size] if args.size else None
    result = run(args.preset, args.device, state, sizes, args.max_side, args.tiled_size, args.tile, args.overlap,
                 args.mem_budget_gib, args.iters, args.seed)
    print_result(result)
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
