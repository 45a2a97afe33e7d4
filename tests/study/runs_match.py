"""Two runs of one study compared node by node: the same nodes, identical masks, and weights and
every number of ``metrics.json`` (timings and the training summary aside) within a tolerance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirl import paths


def _numbers(value: Any, prefix: str = "") -> dict[str, float]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _numbers(item, f"{prefix}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _numbers(item, f"{prefix}[{i}]").items()}
    return {prefix: float(value)} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}


def largest_differences(a: Path, b: Path, nodes: int) -> tuple[float, float]:
    """(largest weight difference, largest score difference) between runs ``a`` and ``b``, which
    must hold the same ``nodes`` finished nodes with identical masks."""
    from mirl.models import load_checkpoint
    from mirl.pruning import load_mask, masks_equal

    found = sorted(p.parent.relative_to(a) for p in a.glob("replicate_*/level_*/*/done.json"))
    assert len(found) == nodes and found == sorted(p.parent.relative_to(b) for p in b.glob("replicate_*/level_*/*/done.json")), found
    worst_weight, worst_score = 0.0, 0.0
    for node in found:
        assert masks_equal(load_mask(paths.mask_file(a / node)), load_mask(paths.mask_file(b / node))), node
        wa, wb = (load_checkpoint(paths.model_file(x / node))[0].state_dict() for x in (a, b))
        assert wa.keys() == wb.keys()
        worst_weight = max([worst_weight] + [float((wa[k].float() - wb[k].float()).abs().max()) for k in wa if wa[k].numel()])
        sa, sb = (json.loads(paths.metrics_file(x / node).read_text()) for x in (a, b))
        sa.pop("train"), sb.pop("train")
        na, nb = _numbers(sa), _numbers(sb)
        assert na.keys() == nb.keys(), node
        worst_score = max([worst_score] + [abs(na[k] - nb[k]) for k in na if "seconds" not in k])
    return worst_weight, worst_score
