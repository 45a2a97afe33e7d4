"""Rewinding resumes the dense run at step t (mirl.study.rewind, train_level's ``start``): the
AdamW state saved at step t, the schedule's position and the remaining T - t steps."""

from __future__ import annotations

import copy
import csv

import pytest
import torch

from mirl import paths
from mirl.errors import MirlError
from mirl.models import build_model
from mirl.study.config import study_preset
from mirl.study.rewind import rewind_start
from mirl.study.train import TrainSettings, train_level
from tests.conftest import FAST
from tests.study.test_train import _Pairs

T, t = 8, 5  # 4 epochs of 2 steps; t inside epoch 2


def _settings(**extra) -> TrainSettings:
    cfg = study_preset("smoke", {"epochs": 4, "warmup_epochs": 2, "steps_per_epoch": 2, "lr": 1e-3, **FAST, **extra})
    return TrainSettings.from_study(cfg)


def _rows(folder) -> list[dict[str, str]]:
    with open(paths.train_log_file(folder)) as fh:
        return list(csv.DictReader(fh))


def test_a_level_started_at_step_t_loads_the_optimiser_state_of_step_t(tmp_path):
    torch.manual_seed(0)
    dense = build_model("tiny")
    saved = {}

    def snapshot(step, net, optimizer):
        if step == t:
            saved.update(step=step, optimizer=copy.deepcopy(optimizer.state_dict()),  # state_dict shares the live tensors
                          weights={k: v.clone() for k, v in net.state_dict().items()})

    train_level(dense, {}, _Pairs(), _settings(), tmp_path / "dense", torch.device("cpu"), on_step=snapshot)
    assert all(int(s["step"]) == t for s in saved["optimizer"]["state"].values())
    rewound = build_model("tiny")
    rewound.load_state_dict(saved["weights"])
    # checkpoint at t + 1: the optimiser state there went on from step t's (a fresh AdamW would count 1 step)
    summary = train_level(rewound, {}, _Pairs(), _settings(checkpoint_every=t + 1), tmp_path / "level_1", torch.device("cpu"),
                          level=1, start={"step": t, "optimizer": saved["optimizer"]})
    state = torch.load(paths.train_state_file(tmp_path / "level_1"), weights_only=True)
    assert state["step"] == t + 1 and all(int(s["step"]) == t + 1 for s in state["optimizer"]["state"].values())
    first = state["optimizer"]["state"][0]["exp_avg"]
    assert not torch.equal(first, torch.zeros_like(first))
    assert summary["steps"] == T and summary["started_at"] == t
    rows, dense_rows = _rows(tmp_path / "level_1"), {r["step"]: r for r in _rows(tmp_path / "dense")}
    assert [int(r["step"]) for r in rows] == list(range(t + 1, T + 1))  # the remaining T - t steps
    assert [r["lr"] for r in rows] == [dense_rows[r["step"]]["lr"] for r in rows]  # the schedule's position


def test_a_rewind_point_outside_the_level_is_one_line(tmp_path):
    with pytest.raises(MirlError, match="rewind point is step 8, outside this level's 8 steps; lower rewind_steps"):
        train_level(build_model("tiny"), {}, _Pairs(), _settings(), tmp_path, torch.device("cpu"), level=1,
                    start={"step": T, "optimizer": None})


def test_a_rewinding_study_of_an_older_mirl_is_refused(tmp_path):
    cfg = study_preset("smoke", {"reset": "rewind", "rewind_steps": 2})
    assert rewind_start(cfg, tmp_path, 0) is None and rewind_start(study_preset("smoke"), tmp_path, 1) is None
    with pytest.raises(MirlError, match="rewind_state.pt is missing: this rewinding study was begun by an older mirl"):
        rewind_start(cfg, tmp_path, 1)
    torch.save({"step": 3, "optimizer": None}, paths.rewind_state(tmp_path))
    with pytest.raises(MirlError, match="not the rewind point of step 2"):
        rewind_start(cfg, tmp_path, 1)
