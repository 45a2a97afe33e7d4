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
from dataclasses import dataclass
from typing import Any, Mapping


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
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()

    @property
    def reduce3_out(self) -> int:
        """Output width of ``chnl_reduce3`` (256 for the paper model, ``2 * prompt_dims[1]``)."""
        return self.chnl_reduce3_out if self.chnl_reduce3_out is not None else 2 * self.prompt_dims[1]

    def validate(self) -> None:
        """Raise ``ValueError`` when a width is not divisible by its number of attention heads."""
        if len(self.num_blocks) != 4 or len(self.heads) != 4:
            raise ValueError("num_blocks and heads need 4 entries (levels 1-4)")
        if len(self.prompt_dims) != 3 or len(self.prompt_sizes) != 3:
            raise ValueError("prompt_dims and prompt_sizes need 3 entries (prompt1..prompt3)")
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error that lists the valid ones."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
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


def preset(name: str) -> ModelConfig:
    """Return the named preset (``tiny``, ``small`` or ``paper``)."""
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; valid: {sorted(MODEL_PRESETS)}") from None


def preset_name(config: ModelConfig) -> str | None:
    """Name of the preset equal to ``config``, or ``None`` for a custom configuration."""
    return next((name for name, cfg in MODEL_PRESETS.items() if cfg == config), None)


__all__ = ["ModelConfig", "MODEL_PRESETS", "preset", "preset_name"]
