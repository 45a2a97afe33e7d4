"""One global magnitude-pruning step of the paper model: torch on the device against a numpy
implementation written like the published code (``numpy.percentile`` over the concatenated
alive magnitudes, then ``numpy.where`` per tensor, with the copies to and from the device).

The torch path is ``mirl.pruning.magnitude.magnitude_prune`` (radix pre-selection, then an
exact numpy-identical percentile). The kept counts of both paths are compared.

Example:
    python -m benchmarks.pruning --preset paper --device cuda
    python -m benchmarks.pruning --preset small --device cpu
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from benchmarks.common import add_common_args, env_info, format_table, pick_device, sync, time_fn, write_json
from mirl.models import build_model
from mirl.pruning.magnitude import magnitude_prune

Weights = dict[str, torch.Tensor]


def prunable(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Upstream rule: every parameter whose name contains ``weight``."""
    return [n for n in state if "weight" in n]


# ---------------------------------------------------------------------------- numpy (published)


def numpy_global_prune(
    weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor], fraction: float
) -> dict[str, torch.Tensor]:
    """The published procedure: alive = non-zero weights, threshold = ``np.percentile`` of
    their magnitudes (linear), ``new_mask = where(|w| < threshold, 0, mask)``; weights are
    masked in place. Tensors go to numpy and back, as upstream does on a GPU."""
    names = list(masks)
    arrays = {n: weights[n].detach().cpu().numpy() for n in names}
    alive = np.concatenate([a[np.nonzero(a)] for a in arrays.values()])
    threshold = np.percentile(np.abs(alive), fraction * 100.0)
    out = {}
    for n in names:
        new_mask = np.where(np.abs(arrays[n]) < threshold, False, masks[n].cpu().numpy())
        out[n] = torch.from_numpy(new_mask).to(weights[n].device)
        weights[n].data.copy_(torch.from_numpy(arrays[n] * new_mask).to(weights[n].device))
    return out


# ---------------------------------------------------------------------------------------- bench


def setup(preset: str, device: torch.device, seed: int = 0, prior_rounds: int = 0) -> tuple[Weights, Weights]:
    """Weights of ``preset`` (seeded init, plus small noise so no magnitudes tie) on ``device``
    and all-ones masks over the prunable tensors; ``prior_rounds`` rounds already pruned."""
    torch.manual_seed(seed)
    state = build_model(preset).state_dict()
    g = torch.Generator().manual_seed(seed + 1)
    weights = {n: (t + 0.01 * torch.randn(t.shape, generator=g)).to(device) for n, t in state.items()}
    masks = {n: torch.ones_like(weights[n], dtype=torch.bool) for n in prunable(weights)}
    for _ in range(prior_rounds):
        masks = magnitude_prune(weights, masks, 0.2)
        for n, m in masks.items():
            weights[n].mul_(m)
    return weights, masks


def run(
    preset: str = "small",
    device: str | torch.device = "auto",
    fraction: float = 0.2,
    iters: int | None = None,
    seed: int = 0,
    prior_rounds: int = 0,
) -> dict[str, Any]:
    """Time one global pruning step with each implementation; check they agree."""
    dev = pick_device(device) if isinstance(device, str) else device
    iters = iters or (10 if dev.type == "cuda" else 3)
    weights, masks = setup(preset, dev, seed, prior_rounds)
    impls: dict[str, Callable[[Weights, Weights, float], Weights]] = {
        "numpy (published)": numpy_global_prune,
        "torch (mirl.pruning.magnitude)": lambda w, m, f: magnitude_prune(w, m, f, scope="global", rule="upstream"),
    }
    rows, kept = [], {}
    for name, impl in impls.items():
        # each call prunes a fresh copy, so every timed call is the same step
        fresh = lambda: ({k: v.clone() for k, v in weights.items()}, masks)  # noqa: E731
        w, m = fresh()
        new = impl(w, m, fraction)
        sync(dev)
        kept[name] = {n: int(t.count_nonzero()) for n, t in new.items()}
        copies = [fresh() for _ in range(2)]
        timing = time_fn(lambda: impl(*copies[0], fraction), dev, warmup=1, iters=iters)
        rows.append({"impl": name, "ms": timing["median_ms"], "min_ms": timing["min_ms"], "kept": sum(kept[name].values())})
    base = rows[0]["ms"]
    for r in rows:
        r["speedup_vs_numpy"] = base / r["ms"]
    ref_kept = kept["numpy (published)"]
    disagree = {
        name: sum(abs(k[n] - ref_kept[n]) for n in ref_kept) for name, k in kept.items() if name != "numpy (published)"
    }
    total = sum(t.numel() for n, t in weights.items() if n in masks)
    return {
        "benchmark": "pruning",
        "preset": preset,
        "fraction": fraction,
        "prior_rounds": prior_rounds,
        "prunable": total,
        "env": env_info(dev),
        "rows": rows,
        "mask_disagreements_vs_numpy": disagree,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line entry point; prints a table and returns the result dict."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.pruning", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", choices=("tiny", "small", "paper"))
    p.add_argument("--fraction", type=float, default=0.2)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--prior-rounds", type=int, default=0, help="prune this many rounds before timing")
    add_common_args(p)
    args = p.parse_args(argv)
    result = run(args.preset, args.device, args.fraction, args.iters, args.seed, args.prior_rounds)
    print(f"pruning: preset {args.preset}, {result['prunable']:,} prunable weights, {result['env']['device']}")
    print(format_table(result["rows"], ["impl", "ms", "min_ms", "speedup_vs_numpy", "kept"]))
    print(f"kept-count differences vs numpy: {result['mask_disagreements_vs_numpy']}")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
