"""The schedule registry (mirl.study.schedules): the published warm-up + cosine by default, and a
registered schedule sets each epoch's learning rate when the study's ``schedule`` setting names it."""

from __future__ import annotations

import csv

import torch

from mirl import paths
from mirl.models import build_model
from mirl.study.config import choices, study_preset
from mirl.study.schedules import schedules
from mirl.study.train import TrainSettings, lr_at_epoch, train_level
from tests.conftest import FAST
from tests.study.test_train import _Pairs


def test_warmup_cosine_is_the_published_schedule_and_the_default():
    assert study_preset("paper").schedule == "warmup_cosine" and choices()["schedule"] == schedules.names()
    assert schedules.get("warmup_cosine") is lr_at_epoch
    assert [schedules.get("constant")(e, 1e-3, 15, 120) for e in (0, 60, 119)] == [1e-3] * 3


def test_a_registered_schedule_sets_each_epochs_rate(tmp_path):
    @schedules.register("halving_for_test")
    def halving(epoch: int, base_lr: float, warmup_epochs: int, max_epochs: int) -> float:
        """Halve the rate every epoch."""
        return base_lr / 2**epoch

    try:
        cfg = study_preset("smoke", {"schedule": "halving_for_test", "epochs": 3, "steps_per_epoch": 1, **FAST})
        train_level(build_model("tiny"), {}, _Pairs(), TrainSettings.from_study(cfg), tmp_path, torch.device("cpu"))
    finally:
        schedules.unregister("halving_for_test")
    with paths.train_log_file(tmp_path).open() as f:
        rates = [float(row["lr"]) for row in csv.DictReader(f)]
    assert rates == [cfg.lr, cfg.lr / 2, cfg.lr / 4]
