"""The loss registry (mirl.study.losses): L1 by default, and a registered loss is what a level
trains on when the study's ``loss`` setting names it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mirl.models import build_model
from mirl.study.config import choices, study_preset
from mirl.study.losses import losses
from mirl.study.train import TrainSettings, train_level
from tests.conftest import FAST
from tests.study.test_train import _Pairs


def test_the_losses_agree_with_their_definitions():
    out, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert study_preset("paper").loss == "l1" and choices()["loss"] == losses.names()
    assert torch.equal(losses.get("l1")(out, target), F.l1_loss(out, target))
    assert torch.equal(losses.get("mse")(out, target), F.mse_loss(out, target))
    charbonnier = losses.get("charbonnier")(out, target)
    assert float(charbonnier) == pytest.approx(float(F.l1_loss(out, target)), abs=2e-3) and charbonnier > F.l1_loss(out, target)


def test_a_registered_loss_is_what_a_level_trains_on(tmp_path):
    seen: list[tuple[int, ...]] = []
    values: list[float] = []

    @losses.register("recorded_mse_for_test")
    def recorded_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MSE that records the batch shapes it sees."""
        seen.append(tuple(output.shape))
        loss = F.mse_loss(output, target)
        values.append(float(loss))
        return loss

    try:
        cfg = study_preset("smoke", {"loss": "recorded_mse_for_test", "epochs": 1, **FAST})
        summary = train_level(build_model("tiny"), {}, _Pairs(), TrainSettings.from_study(cfg), tmp_path, torch.device("cpu"))
    finally:
        losses.unregister("recorded_mse_for_test")
    assert seen == [(cfg.batch_size, 3, 32, 32)] * cfg.steps_per_epoch
    assert summary["final_loss"] == pytest.approx(values[-1])  # the log records the registered loss
