"""Architecture configuration of PromptIR and the named presets.

The published code writes several channel widths as literals that only hold for ``dim=48``
(prompt widths 64/128/320 and the concatenation widths). Here they are functions of
``dim`` and ``prompt_dims``; the ``paper`` preset reproduces the published keys and shapes.

Example:
    >>> from mirl.models.config import preset
    >>> preset("paper").dim
    48
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from dataclasses import dataclass
from typing import Any, Mapping

# Upper bounds of single settings, far beyond any PromptIR in use (the paper model: dim 48, at most
# 8 blocks a level, prompt widths up to 320). They keep a damaged or hostile configuration from
# asking for absurd numbers of modules before the parameter budget is even computed.
MAX_WIDTH = 4096  # dim, prompt_dims, chnl_reduce3_out, prompt_len, prompt_sizes
MAX_BLOCKS = 64  # num_blocks (each level) and num_refinement_blocks
MAX_CHANNELS = 64  # inp_channels, out_channels (images have 3)
MAX_FFN_EXPANSION = 16.0
# A configuration whose network has more parameters than this many paper models is refused.
PARAMETER_BUDGET_FACTOR = 4


def _whole_numbers(name: str, values: Any) -> tuple[int, ...]:
    """``values`` as a tuple of ints; a string, a non-sequence or a non-integer entry is a ``ValueError``."""
    try:
        if isinstance(values, (str, bytes)):
            raise TypeError
        return tuple(operator.index(v) for v in values)
    except TypeError:
        raise ValueError(f"{name} = {values!r} is not a list of whole numbers") from None


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters that fix PromptIR's state-dict keys and shapes."""

    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    prompt_dims: tuple[int, int, int] = (64, 128, 320)
    prompt_len: int = 5
    prompt_sizes: tuple[int, int, int] = (64, 32, 16)
    inp_channels: int = 3
    out_channels: int = 3
    bias: bool = False
    # Channel width after the (unused) third prompt reduction; upstream writes 256 for dim 48.
    chnl_reduce3_out: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_blocks", "heads", "prompt_dims", "prompt_sizes"):
            object.__setattr__(self, name, _whole_numbers(name, getattr(self, name)))
        self.validate()

    @property
    def reduce3_out(self) -> int:
        """Output width of ``chnl_reduce3`` (256 for the paper model, ``2 * prompt_dims[1]``)."""
        return self.chnl_reduce3_out if self.chnl_reduce3_out is not None else 2 * self.prompt_dims[1]

    def validate(self) -> None:
        """Raise ``ValueError`` when a setting is not a whole number in its range (widths and heads
        at least 1, nothing absurdly large) or a width is not divisible by its attention heads."""
        if len(self.num_blocks) != 4 or len(self.heads) != 4:
            raise ValueError("num_blocks and heads need 4 entries (levels 1-4)")
        if len(self.prompt_dims) != 3 or len(self.prompt_sizes) != 3:
            raise ValueError("prompt_dims and prompt_sizes need 3 entries (prompt1..prompt3)")
        self._check_ranges()
        d = self.dim
        widths = {
            "encoder_level1": (d, self.heads[0]),
            "encoder_level2": (2 * d, self.heads[1]),
            "encoder_level3": (4 * d, self.heads[2]),
            "latent": (8 * d, self.heads[3]),
            "noise_level1": (2 * d + self.prompt_dims[0], self.heads[2]),
            "noise_level2": (4 * d + self.prompt_dims[1], self.heads[2]),
            "noise_level3": (8 * d + self.prompt_dims[2], self.heads[2]),
            "decoder_level1": (2 * d, self.heads[0]),
        }
        for name, (width, heads) in widths.items():
            if width % heads:
                raise ValueError(
                    f"{name}: width {width} is not divisible by {heads} heads; "
                    "choose dim/prompt_dims/heads so that every width divides"
                )

    def _check_ranges(self) -> None:
        reduce3 = () if self.chnl_reduce3_out is None else (("chnl_reduce3_out", self.chnl_reduce3_out, 1, MAX_WIDTH),)
        ranges = [("dim", self.dim, 1, MAX_WIDTH), *reduce3,
                  *((f"num_blocks[{i}]", v, 1, MAX_BLOCKS) for i, v in enumerate(self.num_blocks)),
                  ("num_refinement_blocks", self.num_refinement_blocks, 0, MAX_BLOCKS),
                  *((f"heads[{i}]", v, 1, MAX_WIDTH) for i, v in enumerate(self.heads)),
                  *((f"prompt_dims[{i}]", v, 1, MAX_WIDTH) for i, v in enumerate(self.prompt_dims)),
                  ("prompt_len", self.prompt_len, 1, MAX_WIDTH),
                  *((f"prompt_sizes[{i}]", v, 1, MAX_WIDTH) for i, v in enumerate(self.prompt_sizes)),
                  ("inp_channels", self.inp_channels, 1, MAX_CHANNELS), ("out_channels", self.out_channels, 1, MAX_CHANNELS)]
        for name, value, low, high in ranges:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} = {value!r} is not a whole number from {low} to {high}")
        ffn = self.ffn_expansion_factor
        if isinstance(ffn, bool) or not isinstance(ffn, (int, float)) or not math.isfinite(ffn) \
                or not 0 < ffn <= MAX_FFN_EXPANSION or int(self.dim * ffn) < 1:
            raise ValueError(f"ffn_expansion_factor = {ffn!r} is not a number above 0 and at most {MAX_FFN_EXPANSION:g} "
                             f"that leaves dim {self.dim} at least one hidden channel")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias = {self.bias!r} is not true or false")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error that lists the valid ones."""
        if not isinstance(values, Mapping):
            raise ValueError(f"model settings must be a mapping of names to values, not a {type(values).__name__}")
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(values) - valid))
        if unknown:
            raise ValueError(f"unknown model setting(s) {unknown}; valid: {sorted(valid)}")
        return cls(**dict(values))


MODEL_PRESETS: dict[str, ModelConfig] = {
    # Published MIR-L / PromptIR network: 35,592,263 parameters.
    "paper": ModelConfig(),
    # Same architecture, 1/3 of the width, fewer blocks (1.9 M parameters). On a CPU a 48 px step
    # takes about twice a 64 px step of tiny, and in the quickstart's time tiny restores better.
    "small": ModelConfig(
        dim=16,
        num_blocks=(2, 2, 2, 2),
        num_refinement_blocks=2,
        heads=(1, 2, 4, 8),
        prompt_dims=(16, 32, 80),
        prompt_sizes=(32, 16, 8),
    ),
    # Tests and the CPU quickstart study (0.38 M parameters): forward and backward at batch 8,
    # 64x64 in well under a second.
    "tiny": ModelConfig(
        dim=8,
        num_blocks=(1, 1, 1, 1),
        num_refinement_blocks=1,
        heads=(1, 1, 2, 2),
        prompt_dims=(8, 16, 40),
        prompt_sizes=(16, 8, 4),
    ),
}


def parameter_count(config: ModelConfig) -> int:
    """Parameter values of the PromptIR built from ``config``, counted on the ``meta`` device
    (no memory is allocated, no weight initialised).

    Example:
        >>> parameter_count(preset("paper"))
        35592263
    """
    import torch

    from .promptir import PromptIR

    with torch.device("meta"):
        return sum(p.numel() for p in PromptIR(config).parameters())


@functools.lru_cache(maxsize=1)
def parameter_budget() -> int:
    """The most parameters a configuration may ask for: :data:`PARAMETER_BUDGET_FACTOR` paper models."""
    return PARAMETER_BUDGET_FACTOR * parameter_count(MODEL_PRESETS["paper"])


def preset(name: str) -> ModelConfig:
    """Return the named preset (``tiny``, ``small`` or ``paper``)."""
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; valid: {sorted(MODEL_PRESETS)}") from None


def preset_name(config: ModelConfig) -> str | None:
    """Name of the preset equal to ``config``, or ``None`` for a custom configuration."""
    return next((name for name, cfg in MODEL_PRESETS.items() if cfg == config), None)


__all__ = ["MAX_BLOCKS", "MAX_CHANNELS", "MAX_FFN_EXPANSION", "MAX_WIDTH", "ModelConfig", "MODEL_PRESETS",
           "PARAMETER_BUDGET_FACTOR", "parameter_budget", "parameter_count", "preset", "preset_name"]
