"""The dense level's validation curve, and the steps_scale budget that lengthens every level."""

from __future__ import annotations

import json
from pathlib import Path

from mirl import paths
from mirl.study.config import config_hash, study_preset
from mirl.study.lottery import run_study
from mirl.study.train import TrainSettings, lr_at_epoch
from mirl.study.val_curve import POINTS, curve_steps
from tests.conftest import FAST


def test_steps_scale_doubles_every_level_and_keeps_the_schedule_shape(demo_data: Path, tmp_path: Path) -> None:
    base = study_preset("smoke", {"warmup_epochs": 2, "epochs": 4})
    scaled = study_preset("smoke", {"warmup_epochs": 2, "epochs": 4, "steps_scale": 2})
    one, two = TrainSettings.from_study(base), TrainSettings.from_study(scaled)
    assert (two.epochs, two.warmup_epochs) == (2 * one.epochs, 2 * one.warmup_epochs)
    # the same learning rate at the same fraction of the level
    assert [lr_at_epoch(e, 1.0, one.warmup_epochs, one.epochs) for e in (0, 2, 3)] == \
           [lr_at_epoch(2 * e, 1.0, two.warmup_epochs, two.epochs) for e in (0, 2, 3)]
    assert config_hash(study_preset("smoke")) == config_hash(study_preset("smoke", {"steps_scale": 1}))
    run = run_study("smoke", {"data": str(demo_data), "steps_scale": 2, **FAST}, out=tmp_path)
    replicate = paths.replicate_dir(run, 0)
    steps = study_preset("smoke").epochs * study_preset("smoke").steps_per_epoch
    for level in (0, 1, 2):
        metrics = json.loads(paths.metrics_file(paths.level_dir(replicate, level)).read_text())
        assert metrics["train"]["steps"] == 2 * steps, level
    curve = json.loads(paths.metrics_file(paths.level_dir(replicate, 0)).read_text())["val_curve"]
    assert len(curve) >= 8
    assert [p["step"] for p in curve] == sorted({p["step"] for p in curve}) and curve[-1]["step"] == 2 * steps
    assert all(set(p) >= {"step", "psnr", "gain"} for p in curve)
    assert "val_curve" not in json.loads(paths.metrics_file(paths.level_dir(replicate, 1)).read_text())
    assert not (paths.level_dir(replicate, 0) / "val_curve.json").exists()


def test_curve_steps_are_evenly_spaced() -> None:
    steps = curve_steps(400)
    assert len(steps) == POINTS + 1 and steps[0] == 0 and steps[-1] == 400
    assert len({b - a for a, b in zip(steps, steps[1:])}) == 1
