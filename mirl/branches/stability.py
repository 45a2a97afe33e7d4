"""Stability: linear mode connectivity (Frankle, Dziugaite, Roy & Carbin, ICML 2020, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis").

From main's starting point at level k (its reset or rewound weights and its mask) a second copy
is trained with another data order and other degradation draws, and main's step budget. The
network is scored on the linear path between the two trained copies: with P(a) the mean test
PSNR over tasks of (1 - a) * theta_A + a * theta_B (both masked alike, so every point is), the
**barrier** is max over a of [mean(P(0), P(1)) - P(a)], in dB, the paper's error barrier with
PSNR for error. A subnetwork is stable when its barrier is about 0.

Example:
    >>> barrier([{"alpha": 0.0, "psnr": 30.0}, {"alpha": 0.5, "psnr": 28.0}, {"alpha": 1.0, "psnr": 29.0}])
    1.5
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from . import Branch, BranchContext, Evaluate


def interpolate(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * a + alpha * b`` for every tensor (exactly ``a`` at 0 and ``b`` at 1).

    Example:
        >>> interpolate({"w": torch.tensor([0.0, 2.0])}, {"w": torch.tensor([4.0, 2.0])}, 0.25)["w"].tolist()
        [1.0, 2.0]
    """
    if alpha == 0.0:
        return {n: t.clone() for n, t in a.items()}
    if alpha == 1.0:
        return {n: b[n].clone() for n in a}
    return {n: torch.lerp(a[n], b[n], alpha) for n in a}


def barrier(path: Sequence[Mapping[str, Any]]) -> float:
    """max over the path of [mean(P(0), P(1)) - P(alpha)] (dB); the path must hold alpha 0 and 1."""
    by_alpha = {float(p["alpha"]): float(p["psnr"]) for p in path}
    if 0.0 not in by_alpha or 1.0 not in by_alpha:
        raise ValueError("the path needs its end points alpha = 0 and alpha = 1")
    ends = (by_alpha[0.0] + by_alpha[1.0]) / 2
    return max(ends - value for value in by_alpha.values())


def linear_path(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alphas: Sequence[float],
                net: torch.nn.Module, score: Evaluate, limit: int) -> list[dict[str, Any]]:
    """Score ``net`` loaded with each point of the path from ``a`` to ``b``: one
    ``{"alpha", "psnr" (mean over tasks), "tasks": {task: psnr}, "images"}`` per alpha."""
    points = []
    for alpha in alphas:
        net.load_state_dict(interpolate(a, b, float(alpha)))
        tasks = score(net, limit)["tasks"]
        points.append({"alpha": float(alpha), "psnr": sum(t["psnr"] for t in tasks.values()) / len(tasks),
                       "tasks": {name: t["psnr"] for name, t in tasks.items()},
                       "images": sum(int(t["images"]) for t in tasks.values())})
    return points


class Stability(Branch):
    name = "stability"
    label = "stability copy"
    changes = "SGD noise: another data order and degradation draws (same mask, same start); then the linear path"
    runs_at_level_zero = True
    is_control = False

    def data_seed(self, ctx: BranchContext) -> int:
        return ctx.seed

    def after_training(self, ctx: BranchContext, trained: torch.nn.Module, evaluate: Evaluate) -> dict[str, Any]:
        import copy

        from mirl.models import load_checkpoint
        from mirl.paths import level_dir, model_file

        main, _ = load_checkpoint(model_file(level_dir(ctx.replicate, ctx.level)))
        alphas = [float(a) for a in ctx.cfg.stability_alphas]
        net = copy.deepcopy(trained)
        device = next(trained.parameters()).device
        theta_b = {n: t.detach().clone() for n, t in trained.state_dict().items()}
        theta_a = {n: t.to(device) for n, t in main.state_dict().items()}
        path = linear_path(theta_a, theta_b, alphas, net, evaluate, int(ctx.cfg.stability_eval_limit))
        return {"path": path, "barrier": barrier(path), "alphas": alphas,
                "path_eval_limit": int(ctx.cfg.stability_eval_limit)}

    def is_current(self, cfg: Any, metrics: Mapping[str, Any]) -> bool:
        return (metrics.get("alphas") == [float(a) for a in cfg.stability_alphas]
                and metrics.get("path_eval_limit") == int(cfg.stability_eval_limit))
