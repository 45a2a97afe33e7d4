"""Magnitude pruning with the published MIR-L semantics, computed with torch on the weights' device.

Threshold = percentile (linear interpolation, as ``numpy.percentile``) of the magnitudes of the
still-alive weights; weights *strictly smaller* than it are pruned. ``global`` scope uses one
threshold over all prunable tensors; ``layerwise`` one per tensor, with the final ``output``
convolution pruned at half the rate.

Example:
    >>> import torch
    >>> w = {"a.weight": torch.tensor([0.1, -0.5, 0.2, 0.9, -0.05])}
    >>> magnitude_prune(w, None, 0.4)["a.weight"].tolist()
    [False, True, True, True, False]
"""

from __future__ import annotations

from typing import Mapping

import torch

from .mask import Mask
from .rules import prunable_names

SCOPES: tuple[str, ...] = ("global", "layerwise")
OUTPUT_LAYER = "output.weight"


def percentile_linear(values: torch.Tensor, q: float) -> torch.Tensor:
    """``numpy.percentile(values, q)`` (method ``linear``) without leaving the device.

    Two ``kthvalue`` selections replace numpy's partition; the index arithmetic (float64) and
    the interpolation (in the values' dtype, with the weight as a weak scalar) follow numpy's
    ``_quantile``/``_lerp`` step by step, so the threshold is bit-identical to numpy's. Returns a
    0-d tensor of the values' dtype on their device.
    """
    n = values.numel()
    if n == 0:
        raise ValueError("percentile of an empty set of weights")
    values = values.reshape(-1)
    quantile = q / 100.0
    virtual = n * quantile + (1 + quantile * (1 - 1 - 1)) - 1  # numpy: alpha = beta = 1
    previous = min(max(int(virtual // 1), 0), n - 1)
    following = min(previous + 1, n - 1)
    gamma = float(virtual - previous) if 0 <= virtual <= n - 1 else 0.0
    a = torch.kthvalue(values, previous + 1).values  # kthvalue is 1-based
    b = torch.kthvalue(values, following + 1).values if following != previous else a
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def _alive(weight: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Alive = kept by the mask and non-zero (upstream takes ``np.nonzero`` of the masked weights)."""
    alive = weight != 0
    return alive & mask.to(weight.device) if mask is not None else alive


def _threshold_mask(weight: torch.Tensor, alive: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return alive & ~(weight.abs() < threshold)


def magnitude_prune(
    weights: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor] | None,
    fraction: float,
    scope: str = "global",
    rule: str = "upstream",
) -> Mask:
    """Remove ``fraction`` of the still-alive prunable weights by magnitude; return the new mask.

    ``weights``: name -> tensor (``model.state_dict()`` works); ``mask``: the current mask or
    ``None`` (all alive); ``scope``: ``global`` or ``layerwise``; ``rule``: ``upstream`` (names
    containing ``weight``) or ``conv``.

    Example:
        >>> from mirl.models import build_model
        >>> net = build_model("tiny")
        >>> m1 = magnitude_prune(net.state_dict(), None, 0.2)
        >>> m2 = magnitude_prune(net.state_dict(), m1, 0.2, scope="layerwise")
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid: {list(SCOPES)}")
    names = prunable_names(weights, rule)
    if mask is not None:
        missing = [n for n in names if n not in mask]
        if missing:
            raise KeyError(f"mask lacks prunable tensors {missing[:4]}; was it made with another rule?")
    with torch.no_grad():
        tensors = {n: weights[n].detach() for n in names}
        alive = {n: _alive(t, mask[n] if mask is not None else None) for n, t in tensors.items()}
        if scope == "global":
            magnitudes = torch.cat([tensors[n][alive[n]].abs().reshape(-1) for n in names])
            threshold = percentile_linear(magnitudes, fraction * 100.0)
            return {n: _threshold_mask(tensors[n], alive[n], threshold) for n in names}
        new_mask: Mask = {}
        for n in names:
            rate = fraction / 2 if n == OUTPUT_LAYER else fraction
            kept = tensors[n][alive[n]].abs()
            if kept.numel() == 0:
                new_mask[n] = alive[n]
                continue
            new_mask[n] = _threshold_mask(tensors[n], alive[n], percentile_linear(kept, rate * 100.0))
        return new_mask
