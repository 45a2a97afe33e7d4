"""The PromptIR network, its presets, and checkpoint I/O.

Example:
    >>> from mirl.models import build_model, count_parameters
    >>> count_parameters(build_model("paper"))
    35592263
"""

from __future__ import annotations

from typing import Mapping, Union

from torch import nn

from .config import MODEL_PRESETS, ModelConfig, preset, preset_name
from .promptir import IMPLS, PromptIR

ConfigLike = Union[str, ModelConfig, Mapping]


def resolve_config(preset_or_config: ConfigLike) -> ModelConfig:
    """Turn a preset name, a :class:`ModelConfig` or a dict into a :class:`ModelConfig`."""
    if isinstance(preset_or_config, ModelConfig):
        return preset_or_config
    if isinstance(preset_or_config, str):
        return preset(preset_or_config)
    if isinstance(preset_or_config, Mapping):
        return ModelConfig.from_dict(preset_or_config)
    raise TypeError(f"expected a preset name, ModelConfig or dict, got {type(preset_or_config).__name__}")


def build_model(preset_or_config: ConfigLike = "paper", impl: str = "fast") -> PromptIR:
    """Build PromptIR from a preset name (``tiny``, ``small``, ``paper``), config or dict.

    Example:
        >>> net = build_model("tiny", impl="reference")
        >>> net.impl
        'reference'
    """
    return PromptIR(resolve_config(preset_or_config), impl=impl)  # type: ignore[arg-type]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter values."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from .sparse import SPARSE_FORMAT, densify, export_sparse  # noqa: E402

__all__ = [
    "MODEL_PRESETS",
    "IMPLS",
    "SPARSE_FORMAT",
    "ModelConfig",
    "PromptIR",
    "CheckpointError",
    "build_model",
    "count_parameters",
    "densify",
    "export_sparse",
    "load_checkpoint",
    "preset",
    "preset_name",
    "resolve_config",
    "save_checkpoint",
]
