"""Masks that cut what pruning should not: an emptied tensor, or a normalisation scale that lost
more than half of its channels (a zeroed LayerNorm channel passes only the norm's bias).

MIR-L prunes globally: one threshold over all tensors, which LayerNorm scales (about 1) do not
reach. One threshold per tensor (``scope=layerwise``) under the ``upstream`` rule removes the same
share of every scale vector; a study's default rule (``auto``) therefore prunes only convolution
and linear weights under layer-wise scope. These warnings flag a study whose masks cut them anyway,
in the log, the CLI summary and the reports, as "worse than its input" is flagged.

Example:
    >>> report = {"tensors": {"a.norm1.body.weight": {"kept": 3, "total": 8}, "a.conv.weight": {"kept": 0, "total": 9}},
    ...           "empty_tensors": ["a.conv.weight"]}
    >>> for line in mask_warnings(report): print(line)
    1 tensor(s) fully pruned (a.conv.weight): the layer passes nothing (docs/lottery.md, 'Layer collapse')
    1 normalisation scale(s) lost more than half their channels (a.norm1.body.weight keeps 3 of 8): a zeroed channel passes only the norm's bias; prune with rule=conv (the default under scope=layerwise) or scope=global
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from mirl import paths


def is_norm_scale(name: str) -> bool:
    """Whether ``name`` is the scale of a normalisation layer (a ``norm*`` module's ``weight``).

    Example:
        >>> is_norm_scale("encoder_level1.0.norm1.body.weight"), is_norm_scale("encoder_level1.0.ffn.project_in.weight")
        (True, False)
    """
    parts = name.split(".")
    return parts[-1] == "weight" and any(p.startswith("norm") for p in parts[:-1])


def mask_warnings(report: Mapping[str, Any]) -> list[str]:
    """The warnings of one node's sparsity report (:func:`mirl.pruning.mask.sparsity_report`):
    tensors the forward pass uses that the mask empties, and normalisation scales that keep fewer
    than half of their channels. An empty list: nothing to flag."""
    lines = []
    empty = list(report.get("empty_tensors", []))
    if empty:
        lines.append(f"{len(empty)} tensor(s) fully pruned ({_names(empty)}): the layer passes nothing "
                     "(docs/lottery.md, 'Layer collapse')")
    norm = norm_scale_warning(report)
    return lines + ([norm] if norm else [])


def norm_scale_warning(report: Mapping[str, Any]) -> str | None:
    """The warning for a sparsity report whose mask keeps fewer than half the channels of some
    normalisation scale (``None``: every scale keeps at least half)."""
    tensors = report.get("tensors", {})
    cut = [(n, t["kept"], t["total"]) for n, t in tensors.items() if is_norm_scale(n) and 2 * t["kept"] < t["total"]]
    if not cut:
        return None
    worst = min(cut, key=lambda c: c[1] / c[2])
    return (f"{len(cut)} normalisation scale(s) lost more than half their channels ({worst[0]} keeps {worst[1]} "
            f"of {worst[2]}{', ...' if len(cut) > 1 else ''}): a zeroed channel passes only the norm's bias; prune with "
            "rule=conv (the default under scope=layerwise) or scope=global")


def rule_warning(rule: str, scope: str) -> str | None:
    """The warning for a study that ranks every ``*weight*`` tensor on its own (``rule=upstream``
    with ``scope=layerwise``): every LayerNorm scale then loses ``fraction`` of its channels a round.

    Example:
        >>> rule_warning("conv", "layerwise") is None, rule_warning("upstream", "global") is None
        (True, True)
        >>> rule_warning("upstream", "layerwise")[:40]
        'rule=upstream with scope=layerwise prune'
    """
    if rule == "upstream" and scope == "layerwise":
        return ("rule=upstream with scope=layerwise prunes every LayerNorm scale vector by the round's fraction (one threshold per "
                "tensor): MIR-L prunes globally, where the scales (about 1) are not reached; drop rule=upstream (the default, auto, "
                "prunes only convolution and linear weights under layer-wise scope) or use scope=global")
    return None


def study_mask_warnings(study: str | os.PathLike) -> list[str]:
    """The :func:`mask_warnings` of every node of a study folder that has a sparsity report, one
    line per node and warning, prefixed with the node.

    Example:
        >>> study_mask_warnings("/no/such/study")
        []
    """
    lines = []
    for report_file in sorted(Path(study).glob("replicate_*/level_*/*/" + paths.sparsity_file(".").name)):
        node = report_file.parent
        try:
            report = json.loads(report_file.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(report, dict):
            continue
        where = f"{node.parent.parent.name.replace('_', ' ')}, {node.parent.name.replace('_', ' ')}, {node.name}"
        lines += [f"{where}: {line}" for line in mask_warnings(report)]
    return lines


def _names(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


__all__ = ["is_norm_scale", "mask_warnings", "norm_scale_warning", "rule_warning", "study_mask_warnings"]
