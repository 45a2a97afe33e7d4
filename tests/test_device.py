"""mirl.device: picking the compute device (CPU here; CUDA only when torch says it is present)."""

from __future__ import annotations

import pytest
import torch

from mirl.device import DEVICE_CHOICES, resolve_device
from mirl.errors import MirlError


def test_auto_follows_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


def test_auto_matches_this_machine() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_explicit_cpu_and_device_objects_pass_through() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    dev = torch.device("cpu", 0)
    assert resolve_device(dev) is dev
    assert torch.zeros(1, device=resolve_device("cpu")).device.type == "cpu"


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_says_what_to_use(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MirlError, match=rf"device '{name}' asked for, but no CUDA GPU is available; use --device cpu or auto"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "tpu9", "cpu:x"])
def test_unknown_device_names_it_and_the_choices(name: str) -> None:
    with pytest.raises(MirlError, match=rf"unknown device '{name}'; valid: \['auto', 'cpu', 'cuda'\]"):
        resolve_device(name)
    assert DEVICE_CHOICES == ("auto", "cpu", "cuda")
