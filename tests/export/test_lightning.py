"""mirl.export.lightning: the published Lightning checkpoint's payload and file.

tests/export/test_formats.py loads a paper-size export the published way; here: the payload's
keys and copies, the refusal's wording, and a round trip through ``load_checkpoint`` (a tiny
state dict written under the paper preset's name, which is all ``lightning_payload`` checks).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mirl.errors import MirlError
from mirl.export.lightning import LIGHTNING_VERSION, export_lightning, lightning_payload
from mirl.models import build_model, load_checkpoint


@pytest.fixture()
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model("tiny").state_dict()


def test_payload_prefixes_every_key_and_copies_the_tensors(state: dict[str, torch.Tensor]) -> None:
    payload = lightning_payload(state, "paper", epoch=7, global_step=1234)
    assert payload["epoch"] == 7 and payload["global_step"] == 1234
    assert payload["pytorch-lightning_version"] == LIGHTNING_VERSION
    tensors = payload["state_dict"]
    assert list(tensors) == [f"net.{k}" for k in state]
    name = "encoder_level1.0.ffn.project_in.weight"
    assert torch.equal(tensors[f"net.{name}"], state[name])
    tensors[f"net.{name}"].zero_()
    assert bool(state[name].abs().sum() > 0), "the payload shares storage with the network"


def test_payload_tensors_are_contiguous_and_detached() -> None:
    weight = torch.nn.Parameter(torch.rand(4, 6))
    payload = lightning_payload({"w": weight.t()}, "paper")
    out = payload["state_dict"]["net.w"]
    assert out.is_contiguous() and not out.requires_grad
    assert torch.equal(out, weight.detach().t())


def test_other_presets_are_refused_naming_source_and_alternative(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    with pytest.raises(MirlError) as info:
        lightning_payload(state, "small", source="runs/x/model.pt")
    message = str(info.value)
    assert message.startswith("runs/x/model.pt: network preset 'small' is not the published architecture ('paper')")
    assert "Use --format sparse or --format onnx" in message
    out = tmp_path / "small.ckpt"
    with pytest.raises(MirlError, match="'custom'"):
        export_lightning(out, state, "custom")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_export_round_trips_through_load_checkpoint(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    """The file loads with ``weights_only=True``, and mirl reads it back as a Lightning checkpoint."""
    out = tmp_path / "ticket.ckpt"
    size = export_lightning(out, state, "paper")
    assert size == os.path.getsize(out) > 0
    raw = torch.load(out, map_location="cpu", weights_only=True)
    assert set(raw) == {"epoch", "global_step", "pytorch-lightning_version", "state_dict"}
    assert raw["epoch"] == 0 and raw["global_step"] == 0
    model, meta = load_checkpoint(out)
    assert meta["format"] == "lightning" and meta["preset"] == "tiny"
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
