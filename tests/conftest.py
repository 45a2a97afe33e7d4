"""Shared test fixtures. Reference vectors from the published implementation live in
tests/fixtures/ (copied from shared/fixtures; see its README)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

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


# ---- shared study fixtures: a small built-in data set and one finished smoke study ----------

FAST = {"progress": False}


def subprocess_env() -> dict[str, str]:
    """Environment for a `mirl` subprocess: one thread, this checkout importable."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mirl.data.make_dataset import make_dataset

    root = tmp_path_factory.mktemp("data") / "builtin"
    make_dataset(root, seed=0, max_test_side=64, progress=False)
    return root


@pytest.fixture(scope="session")
def smoke_run(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mirl.study.lottery import run_study

    return run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path_factory.mktemp("runs"))


# ---- the browser tests: Debian's Chromium driven by the PyPI playwright (never `playwright install`)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def browser_or_skip() -> Any:
    """playwright's ``sync_playwright``, or a skip that says what is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (scripts/setup.sh does, as root with apt)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the PyPI package 'playwright' is not installed (pip install -e '.[test]')")
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = browser_or_skip()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
