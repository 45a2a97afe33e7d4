"""Shared test fixtures. Reference vectors from the published implementation live in
tests/fixtures/ (copied from shared/fixtures; see its README)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

# Small models train faster on one thread, and a shared 2-core machine stays usable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def recipe_state_dict() -> dict[str, torch.Tensor]:
    """The fixture weight recipe (fixtures/README.md) for the paper-size network."""
    spec = json.loads((FIXTURES / "promptir_state_dict.json").read_text())
    state = {}
    for i, (key, shape) in enumerate(sorted(spec["state_dict"])):
        t = torch.randn(shape, generator=torch.Generator().manual_seed(1000 + i)) * 0.05
        if (key.endswith("body.weight") and len(shape) == 1) or key.endswith("temperature"):
            t = t + 1.0
        state[key] = t
    return state


@pytest.fixture(scope="session")
def paper_recipe() -> dict[str, torch.Tensor]:
    return recipe_state_dict()


@pytest.fixture(scope="session")
def state_dict_spec() -> dict:
    return json.loads((FIXTURES / "promptir_state_dict.json").read_text())
