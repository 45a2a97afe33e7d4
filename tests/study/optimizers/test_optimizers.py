"""The optimizer registry (mirl.study.optimizers): the published AdamW by default, and a
registered optimizer trains a level when the study's ``optimizer`` setting names it."""

from __future__ import annotations

import pytest
import torch

from mirl.models import build_model
from mirl.study.config import ConfigError, choices, study_preset
from mirl.study.optimizers import optimizers
from mirl.study.step import build_train_step
from mirl.study.train import TrainSettings, train_level
from tests.conftest import FAST
from tests.study.test_train import _Pairs


def test_adamw_is_the_default_and_sgd_is_listed():
    assert study_preset("paper").optimizer == "adamw" and choices()["optimizer"] == optimizers.names()
    assert {"adamw", "sgd"} <= set(optimizers.names())
    step = build_train_step(build_model("tiny"), {}, torch.device("cpu"), lr=1e-3)
    assert type(step.optimizer).__name__ == "AdamW"
    with pytest.raises(ConfigError, match="bad value 'adam' for optimizer; valid: adamw, sgd"):
        study_preset("smoke", {"optimizer": "adam"})


def test_a_registered_optimizer_trains_a_level(tmp_path):
    made: list[torch.optim.Optimizer] = []

    @optimizers.register("plain_sgd_for_test", capturable=False)
    def plain_sgd(params, lr, weight_decay=0.0, fused=False, capturable=False):
        """SGD without momentum."""
        made.append(torch.optim.SGD(params, lr=lr))
        return made[-1]

    try:
        cfg = study_preset("smoke", {"optimizer": "plain_sgd_for_test", "epochs": 1, **FAST})
        model = build_model("tiny")
        before = [p.detach().clone() for p in model.parameters()]
        summary = train_level(model, {}, _Pairs(), TrainSettings.from_study(cfg), tmp_path, torch.device("cpu"))
    finally:
        optimizers.unregister("plain_sgd_for_test")
    assert len(made) == 1 and made[0].param_groups[0]["lr"] == cfg.lr  # one smoke epoch trains at the peak lr
    assert summary["steps"] == cfg.steps_per_epoch and not summary["execution"]["cuda_graph"]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "the optimizer never stepped"
