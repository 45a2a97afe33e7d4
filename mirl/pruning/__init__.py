"""Masks, magnitude pruning, pruning by any score (exact counts), the lottery-ticket controls and sparse export.

Example:
    >>> from mirl.models import build_model
    >>> from mirl.pruning import magnitude_prune, sparsity_report
    >>> net = build_model("tiny")
    >>> mask = magnitude_prune(net.state_dict(), None, 0.2)
    >>> round(sparsity_report(mask, net.state_dict())["prunable"]["density"], 2)
    0.8
"""

from mirl.models.sparse import densify, export_sparse

from .controls import one_shot_fraction, random_prune
from .health import mask_warnings, study_mask_warnings
from .magnitude import SCOPES, magnitude_prune
from .mask import (Mask, MaskApplier, apply_mask, check_mask_fits, count_kept, full_mask, load_mask, mask_gradients, masks_equal,
                   save_mask, sparsity_report, write_sparsity_report)
from .ranking import prune_lowest
from .rules import RULES, density_summary, is_prunable, prunable_names

__all__ = [
    "Mask",
    "MaskApplier",
    "RULES",
    "SCOPES",
    "apply_mask",
    "check_mask_fits",
    "count_kept",
    "densify",
    "density_summary",
    "export_sparse",
    "full_mask",
    "is_prunable",
    "load_mask",
    "magnitude_prune",
    "mask_warnings",
    "mask_gradients",
    "masks_equal",
    "one_shot_fraction",
    "prunable_names",
    "prune_lowest",
    "random_prune",
    "save_mask",
    "sparsity_report",
    "study_mask_warnings",
    "write_sparsity_report",
]
