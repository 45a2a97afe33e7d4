"""mirl.models.config: ModelConfig's validation and errors, its dict round trip, and the presets."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mirl.models import build_model
from mirl.models.config import MODEL_PRESETS, ModelConfig, preset, preset_name


@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_presets_round_trip_through_json(name: str) -> None:
    cfg = preset(name)
    plain = json.loads(json.dumps(cfg.to_dict()))  # JSON-able: tuples became lists
    assert isinstance(plain["num_blocks"], list)
    again = ModelConfig.from_dict(plain)
    assert again == cfg and preset_name(again) == name


def test_lists_become_tuples_and_the_config_is_frozen() -> None:
    cfg = ModelConfig(**{**preset("tiny").to_dict(), "heads": [1, 1, 2, 2]})
    assert cfg.heads == (1, 1, 2, 2) and cfg == preset("tiny") and hash(cfg) == hash(preset("tiny"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dim = 16  # type: ignore[misc]


def test_a_custom_config_has_no_preset_name() -> None:
    assert preset_name(dataclasses.replace(preset("tiny"), prompt_len=4)) is None


def test_unknown_preset_names_itself_and_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        preset("Tiny")
    assert str(info.value) == "unknown model preset 'Tiny'; valid: ['paper', 'small', 'tiny']"


def test_unknown_settings_are_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        ModelConfig.from_dict({"dim": 8, "depth": 3, "width": 2})
    message = str(info.value)
    assert message.startswith("unknown model setting(s) ['depth', 'width']; valid: [")
    assert all(repr(f.name) in message for f in dataclasses.fields(ModelConfig))


@pytest.mark.parametrize(("change", "message"), [
    ({"num_blocks": (1, 1, 1)}, "num_blocks and heads need 4 entries (levels 1-4)"),
    ({"heads": (1, 1, 2, 2, 2)}, "num_blocks and heads need 4 entries (levels 1-4)"),
    ({"prompt_dims": (8, 16)}, "prompt_dims and prompt_sizes need 3 entries (prompt1..prompt3)"),
    ({"prompt_sizes": (16, 8, 4, 2)}, "prompt_dims and prompt_sizes need 3 entries (prompt1..prompt3)"),
    # dim 8: the encoder widths 8/16/32/64 divide by (1, 1, 4, 2) heads; the first prompt level's 16 + 6 does not
    ({"heads": (1, 1, 4, 2), "prompt_dims": (6, 16, 40)}, "noise_level1: width 22 is not divisible by 4 heads"),
    ({"dim": 6, "heads": (1, 8, 2, 2)}, "encoder_level2: width 12 is not divisible by 8 heads"),
])
def test_invalid_widths_name_the_level_and_numbers(change: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        dataclasses.replace(preset("tiny"), **change)
    assert str(info.value).startswith(message)
    if "divisible" in message:
        assert str(info.value).endswith("choose dim/prompt_dims/heads so that every width divides")


def test_every_preset_builds_and_reduce3_out_sets_the_unused_convolution() -> None:
    """reduce3_out is 2 x prompt_dims[1] unless given; the network's chnl_reduce3 has that width."""
    assert preset("paper").reduce3_out == 256
    for name in MODEL_PRESETS:
        cfg = preset(name)
        assert cfg.reduce3_out == 2 * cfg.prompt_dims[1]
    custom = dataclasses.replace(preset("tiny"), chnl_reduce3_out=24)
    assert custom.reduce3_out == 24
    net = build_model(custom)
    assert net.chnl_reduce3.out_channels == 24 and net.reduce_noise_channel_3.in_channels == 4 * custom.dim + 24
