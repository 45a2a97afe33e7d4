"""The network registry (mirl.models.networks): the PromptIR presets are its entries, the study's
``model`` setting lists its names, and a registered network is a valid ``model``."""

from __future__ import annotations

import pytest

from mirl.models import MODEL_PRESETS, ModelConfig, count_parameters
from mirl.models.networks import build_network, networks
from mirl.models.promptir import PromptIR
from mirl.study.config import ConfigError, choices, study_preset


def test_the_promptir_presets_are_the_networks():
    assert networks.names() == tuple(MODEL_PRESETS)
    assert choices()["model"] == networks.names()
    net = build_network("tiny", impl="reference")
    assert isinstance(net, PromptIR) and net.config == MODEL_PRESETS["tiny"] and net.impl == "reference"


def test_a_registered_network_is_a_model_setting():
    narrow = ModelConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2),
                         prompt_dims=(8, 16, 40), prompt_sizes=(16, 8, 4), prompt_len=2)

    @networks.register("tiny_short_prompts")
    def tiny_short_prompts(impl: str = "fast") -> PromptIR:
        """tiny with 2 prompt components instead of 5."""
        return PromptIR(narrow, impl=impl)

    try:
        cfg = study_preset("smoke", {"model": "tiny_short_prompts"})
        net = build_network(cfg.model, cfg.impl)
        assert net.config.prompt_len == 2 and count_parameters(net) < count_parameters(build_network("tiny"))
    finally:
        networks.unregister("tiny_short_prompts")
    with pytest.raises(ConfigError, match="bad value 'tiny_short_prompts' for model; valid: paper, small, tiny"):
        study_preset("smoke", {"model": "tiny_short_prompts"})
