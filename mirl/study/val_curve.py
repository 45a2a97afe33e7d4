"""The dense level's learning curve on the validation split: has its training budget flattened?

Main's level 0 scores ``val_curve_images`` validation images per task before training and at
:data:`POINTS` evenly spaced steps (:func:`curve_steps`); the points land in the node's
``metrics.json`` as ``val_curve``: ``[{"step", "psnr", "gain", "tasks"}, ...]`` (``gain``: PSNR
over the degraded input, the mean over tasks). While the level trains they are kept in
``val_curve.json`` of the node, so an interrupted level resumes with them.

Example:
    >>> curve_steps(16)
    [0, 2, 4, 6, 8, 10, 12, 14, 16]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch

from mirl.errors import MirlError
from mirl.fileio import atomic_write_json, read_json
from mirl.study.step import eager_blocks

POINTS = 8  # evaluations after step 0
FILE = "val_curve.json"

log = logging.getLogger(__name__)

Score = Callable[[torch.nn.Module], dict[str, Any]]  # network -> evaluate_model's scores


def curve_steps(total_steps: int, points: int = POINTS) -> list[int]:
    """Step 0 and ``points`` evenly spaced steps up to ``total_steps`` (fewer when it has fewer steps).

    Example:
        >>> curve_steps(6)
        [0, 1, 2, 3, 4, 5, 6]
    """
    return sorted({0, *(round(i * total_steps / points) for i in range(1, points + 1))})


def curve_point(step: int, scores: dict[str, Any]) -> dict[str, Any]:
    """One point of the curve from :func:`mirl.scoring.evaluate.evaluate_model`'s scores.

    Example:
        >>> curve_point(4, {"tasks": {"derain": {"psnr": 30.0, "input_psnr": 27.5}}})
        {'step': 4, 'psnr': 30.0, 'gain': 2.5, 'tasks': {'derain': 30.0}}
    """
    tasks = scores["tasks"]
    psnr = sum(t["psnr"] for t in tasks.values()) / len(tasks)
    gain = sum(t["psnr"] - t["input_psnr"] for t in tasks.values()) / len(tasks)
    return {"step": int(step), "psnr": round(psnr, 4), "gain": round(gain, 4), "tasks": {k: round(v["psnr"], 4) for k, v in tasks.items()}}


class ValCurve:
    """The ``on_step`` hook of :func:`mirl.study.train.train_level` that records the curve in ``node``.

    Example:
        >>> curve = ValCurve(Path("/tmp/node"), score, total_steps=400)   # doctest: +SKIP
        >>> curve.start(net); train_level(..., on_step=curve)            # doctest: +SKIP
    """

    def __init__(self, node: Path, score: Score, total_steps: int) -> None:
        self.path = Path(node) / FILE
        self.score = score
        self.steps = set(curve_steps(total_steps))
        self.points: list[dict[str, Any]] = []
        if self.path.is_file():  # an interrupted level: its points so far
            found = read_json(self.path, advice="delete it to score the curve again from the next point")
            self.points = [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []
        self.failed = False

    def start(self, net: torch.nn.Module) -> None:
        """Score step 0 (unless recorded already)."""
        self(0, net, None)

    def __call__(self, step: int, net: torch.nn.Module, optimizer: Any) -> None:
        if self.failed or step not in self.steps or any(p["step"] == step for p in self.points):
            return
        was_training = net.training
        net.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad(), eager_blocks(net):  # compiled blocks are for training
                scores = self.score(net)
        except MirlError as exc:  # e.g. a data folder without a val/ split
            log.warning("no validation curve: %s", exc)
            self.failed = True
            return
        finally:
            net.train(was_training)
        self.points.append(curve_point(step, scores))
        atomic_write_json(self.path, self.points)

    def result(self) -> list[dict[str, Any]]:
        """The points, by step."""
        return sorted(self.points, key=lambda p: p["step"])


def chain(*hooks: Callable[..., None] | None) -> Callable[..., None] | None:
    """One ``on_step`` hook that calls each given one in turn (``None``: none given).

    Example:
        >>> seen = []
        >>> chain(None, lambda *a: seen.append(a[0]))(3, None, None); seen
        [3]
    """
    present = [h for h in hooks if h is not None]
    if not present:
        return None

    def hook(step: int, net: torch.nn.Module, optimizer: Any) -> None:
        for h in present:
            h(step, net, optimizer)

    return hook


__all__ = ["FILE", "POINTS", "ValCurve", "chain", "curve_point", "curve_steps"]
