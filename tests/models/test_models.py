"""mirl.models (the package's own code): resolve_config, build_model, count_parameters."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

import mirl.models as models
from mirl.models import ModelConfig, PromptIR, build_model, count_parameters, preset, resolve_config


def test_resolve_config_accepts_a_name_a_config_or_a_dict() -> None:
    custom = dataclasses.replace(preset("tiny"), prompt_len=3)
    assert resolve_config(custom) is custom
    assert resolve_config("small") == preset("small")
    assert resolve_config(custom.to_dict()) == custom


def test_resolve_config_refuses_other_types_by_name() -> None:
    with pytest.raises(TypeError, match="expected a preset name, ModelConfig or dict, got int"):
        resolve_config(48)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got list"):
        resolve_config(["tiny"])  # type: ignore[arg-type]


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_build_model_takes_config_and_impl(impl: str) -> None:
    custom = {**preset("tiny").to_dict(), "prompt_len": 3}
    net = build_model(custom, impl=impl)
    assert isinstance(net, PromptIR) and net.impl == impl
    assert net.config == ModelConfig.from_dict(custom)
    assert net.prompt1.prompt_param.shape[1] == 3  # the setting reached the network


def test_build_model_refuses_an_unknown_impl() -> None:
    with pytest.raises(ValueError, match=r"unknown impl 'cuda'; valid: \['reference', 'fast'\]"):
        build_model("tiny", impl="cuda")


def test_count_parameters_matches_a_hand_count() -> None:
    """Conv 3->4 3x3 with bias (4*3*9 + 4) and a linear 5->2 with bias (5*2 + 2)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(5, 2))
    assert count_parameters(net) == 4 * 3 * 9 + 4 + 5 * 2 + 2
    net[0].bias.requires_grad_(False)
    assert count_parameters(net) == 4 * 3 * 9 + 5 * 2 + 2
    assert count_parameters(net, trainable_only=False) == 4 * 3 * 9 + 4 + 5 * 2 + 2


def test_count_parameters_of_a_preset_is_its_state_dict_size() -> None:
    """PromptIR has no buffers: its parameters are exactly its state dict's values; a wider preset has more."""
    tiny = build_model("tiny")
    assert count_parameters(tiny) == sum(t.numel() for t in tiny.state_dict().values())
    assert count_parameters(build_model("small")) > count_parameters(tiny)


def test_every_exported_name_is_there() -> None:
    assert sorted(models.__all__) == sorted(set(models.__all__))
    for name in models.__all__:
        assert getattr(models, name) is not None, name

