"""The main chain's pruning rules (mirl.study.pruners): ``mirl lottery --set pruner=snip`` (with
another optimizer and loss) runs, and a rule registered in a test prunes main from ``--set pruner=``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mirl import paths
from mirl.cli import main
from mirl.models import load_checkpoint
from mirl.pruning import load_mask, magnitude_prune, masks_equal
from mirl.study.config import ConfigError, choices, study_preset
from mirl.study.lottery import UNUSED, main_mask
from mirl.study.pruners import PruneContext, pruners
from tests.study.test_train import _Pairs

SETTINGS = ["optimizer=sgd", "loss=charbonnier", "pruner=snip", "rounds=1"]


@pytest.fixture(scope="module")
def snip_study(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["lottery", "--preset", "smoke", "--out", str(out), "--no-progress", "--set", f"data={demo_data}", *SETTINGS]) == 0
    (study,) = out.iterdir()
    return study


def test_magnitude_is_the_default_and_snip_is_listed():
    assert study_preset("paper").pruner == "magnitude" and choices()["pruner"] == pruners.names()
    assert {"magnitude", "snip"} <= set(pruners.names())
    with pytest.raises(ConfigError, match="bad value 'synflow' for pruner; valid: magnitude, snip"):
        study_preset("smoke", {"pruner": "synflow"})


def test_lottery_runs_with_sgd_charbonnier_and_snip(snip_study: Path):
    config = json.loads((snip_study / "config.json").read_text())
    assert {k: config["non_default"][k] for k in ("optimizer", "loss", "pruner")} == {"optimizer": "sgd", "loss": "charbonnier", "pruner": "snip"}
    replicate = paths.replicate_dir(snip_study, 0)
    level0, level1 = (paths.level_dir(replicate, k) for k in (0, 1))
    previous, mask = load_mask(paths.mask_file(level0)), load_mask(paths.mask_file(level1))
    alive = sum(int(m.sum()) for m in previous.values())
    assert sum(int(m.sum()) for m in mask.values()) == alive - round(0.2 * alive)  # snip's exact count
    trained = load_checkpoint(paths.model_file(level0))[0].state_dict()
    assert not masks_equal(mask, magnitude_prune(trained, previous, 0.2)), "level 1 was pruned by magnitude"
    assert json.loads(paths.metrics_file(level1).read_text())["train"]["steps"] > 0


def test_a_registered_pruner_prunes_main_from_the_pruner_setting(snip_study: Path):
    seen: list[PruneContext] = []

    @pruners.register("first_half_for_test")
    def first_half(ctx: PruneContext) -> dict[str, torch.Tensor]:
        """Prune the first half of every tensor."""
        seen.append(ctx)
        return {n: torch.arange(m.numel()).view(m.shape) >= m.numel() // 2 for n, m in ctx.previous.items()}

    try:
        cfg = study_preset("smoke", {"pruner": "first_half_for_test", "rounds": 1})
        replicate = paths.replicate_dir(snip_study, 0)
        theta0 = load_checkpoint(paths.init_weights(replicate))[0].state_dict()
        mask = main_mask(cfg, replicate, 1, theta0, _Pairs())
    finally:
        pruners.unregister("first_half_for_test")
    (ctx,) = seen
    assert ctx.level == 1 and ctx.unused == frozenset(UNUSED)
    assert masks_equal(ctx.previous, load_mask(paths.mask_file(paths.level_dir(replicate, 0))))
    assert all(torch.equal(ctx.start[n], theta0[n]) for n in ctx.previous)  # reset=init: theta_0
    assert all(int(m.sum()) == m.numel() - m.numel() // 2 for m in mask.values())
