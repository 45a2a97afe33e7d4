"""PromptIR (Potlapalli et al. 2023) at the sizes of :data:`mirl.models.config.MODEL_PRESETS`:
``paper`` (the published network), ``small`` and ``tiny``.

Example:
    >>> from mirl.models.networks import networks
    >>> networks.entry("paper").summary
    'PromptIR at one preset size (tiny, small, paper).'
"""

from __future__ import annotations

import functools

from mirl.models import build_model
from mirl.models.config import MODEL_PRESETS
from mirl.models.networks import networks
from mirl.models.promptir import PromptIR


def promptir(preset: str, impl: str = "fast") -> PromptIR:
    """PromptIR at one preset size (tiny, small, paper)."""
    return build_model(preset, impl=impl)


for _name in MODEL_PRESETS:
    networks.register(_name)(functools.update_wrapper(functools.partial(promptir, _name), promptir))
