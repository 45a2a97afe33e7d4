"""evaluate_model, results tables naming the convention, study folders, and `mirl evaluate`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mirl import paths
from mirl.cli import main
from mirl.data.imageio import write_image
from mirl.errors import MirlError
from mirl.scoring.evaluate import EvalSettings, evaluate_model, find_checkpoints, format_table, write_results_table
from mirl.scoring.metrics import psnr, ssim
from mirl.models import build_model, save_checkpoint


class Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    for i in range(3):
        clean = rgb(40, 52, i)
        write_image(root / "test/denoise/BSD68" / f"{i}.png", clean)
        write_image(root / "test/derain/Rain100L/target" / f"{i}_gt.png", clean)
        write_image(root / "test/derain/Rain100L/input" / f"{i}_rainy.png", np.clip(clean.astype(int) + 10, 0, 255).astype(np.uint8))
    return root


def test_identity_scores_equal_input_scores(data):
    res = evaluate_model(Identity(), data, ["derain"], device="cpu", progress=False)
    assert res["convention"] == "upstream" and res["test_crop"] == "center_crop_16"
    r = res["tasks"]["derain"]
    assert r["images"] == 3 and [p["name"] for p in r["per_image"]] == ["Rain100L/0_rainy", "Rain100L/1_rainy", "Rain100L/2_rainy"]
    clean = rgb(40, 52, 0)[4:36, 2:50].astype(np.float64) / 255
    rainy = np.clip(rgb(40, 52, 0).astype(int) + 10, 0, 255)[4:36, 2:50] / 255
    assert r["per_image"][0]["psnr"] == pytest.approx(psnr(rainy, clean), abs=1e-5)
    assert r["per_image"][0]["ssim"] == pytest.approx(ssim(rainy, clean), abs=1e-5)
    assert r["psnr"] == pytest.approx(np.mean([p["psnr"] for p in r["per_image"]]))
    # the identity model restores nothing: its scores are the degraded input's own
    assert r["per_image"][0]["input_psnr"] == pytest.approx(psnr(rainy, clean), abs=1e-5)
    assert r["input_psnr"] == pytest.approx(r["psnr"]) and r["input_ssim"] == pytest.approx(r["ssim"])


def test_pad_mode_scores_full_images(data):
    res = evaluate_model(Identity(), data, ["derain"], EvalSettings(pad=True, convention="y"), device="cpu", progress=False)
    assert res["test_crop"] == "pad_16" and res["convention"] == "y"
    clean = rgb(40, 52, 1).astype(np.float64) / 255
    rainy = np.clip(rgb(40, 52, 1).astype(int) + 10, 0, 255) / 255
    assert res["tasks"]["derain"]["per_image"][1]["psnr"] == pytest.approx(psnr(rainy, clean, "y"), abs=1e-4)


def test_tiny_model_all_denoise_limit_and_saving(data, tmp_path):
    model = build_model("tiny")
    res = evaluate_model(model, data, ["denoise"], EvalSettings(limit=2), device="cpu", save_dir=tmp_path / "gallery", progress=False)
    assert list(res["tasks"]) == ["denoise_15", "denoise_25", "denoise_50"]
    assert all(r["images"] == 2 for r in res["tasks"].values())
    assert sorted(p.name for p in (tmp_path / "gallery/denoise_25/BSD68").iterdir()) == ["0.png", "1.png"]
    again = evaluate_model(model, data, ["denoise_50"], EvalSettings(limit=2), device="cpu", progress=False)
    assert again["tasks"]["denoise_50"]["psnr"] == res["tasks"]["denoise_50"]["psnr"]  # noise is seeded
    assert res["tasks"]["denoise_50"]["input_psnr"] < res["tasks"]["denoise_15"]["input_psnr"]


def test_results_table_names_convention(data, tmp_path):
    res = evaluate_model(Identity(), data, ["derain", "denoise_15"], device="cpu", progress=False)
    csv_path, json_path = write_results_table(tmp_path / "out", {"level_0": res})
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["task"] for r in rows] == ["derain", "denoise_15", "average"]
    assert {r["convention"] for r in rows} == {"upstream"} and {r["test_crop"] for r in rows} == {"center_crop_16"}
    assert json.loads(json_path.read_text())["conventions"] == ["upstream"]
    assert "metric convention: upstream" in format_table({"level_0": res})
    assert {float(r["gain"]) for r in rows} == {0.0} and float(rows[0]["input_psnr"]) == pytest.approx(res["tasks"]["derain"]["psnr"], abs=1e-4)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def _study(root: Path) -> Path:
    """An empty study folder of the current layout: its config.json, and replicate 0's folder."""
    study = root / "demo_00000000"
    study.mkdir(parents=True)
    paths.run_config(study).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "name": study.name, "preset": "smoke"}))
    return study


def test_find_checkpoints_level_order(tmp_path):
    study = _study(tmp_path / "runs")
    replicate = paths.replicate_dir(study, 0)
    for k in (10, 2, 0):
        paths.level_dir(replicate, k).mkdir(parents=True)
        paths.model_file(paths.level_dir(replicate, k)).write_bytes(b"x")
    paths.level_dir(replicate, 5).mkdir(parents=True)  # no checkpoint yet: not listed
    paths.level_dir(replicate, 2, "random_reinit").mkdir()  # a branch: not part of the ticket chain
    paths.model_file(paths.level_dir(replicate, 2, "random_reinit")).write_bytes(b"x")
    assert [n for n, _ in find_checkpoints(study)] == ["level_0", "level_2", "level_10"]
    assert [n for n, _ in find_checkpoints(replicate)] == ["level_0", "level_2", "level_10"]
    assert find_checkpoints(replicate / "level_2") == [("level_2", paths.model_file(paths.level_dir(replicate, 2)))]
    assert find_checkpoints(paths.level_dir(replicate, 2, "random_reinit")) == [
        ("level_2/random_reinit", paths.model_file(paths.level_dir(replicate, 2, "random_reinit")))]
    with pytest.raises(MirlError, match="no model.pt in this level folder"):
        find_checkpoints(paths.level_dir(replicate, 5))
    with pytest.raises(MirlError, match="level_<k>/main/model.pt"):
        find_checkpoints(tmp_path)
    with pytest.raises(MirlError, match="no such"):
        find_checkpoints(tmp_path / "missing")


def test_cli_evaluate_run(data, tmp_path, capsys):
    run = _study(tmp_path / "runs")
    for k in (0, 1):
        save_checkpoint(paths.model_file(paths.level_dir(paths.replicate_dir(run, 0), k)), build_model("tiny"))
    rc = main(["evaluate", str(run), "--data", str(data), "--tasks", "derain", "denoise_25", "--out", str(tmp_path / "res"),
               "--device", "cpu", "--no-progress", "--limit", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "metric convention: upstream" in out and "level_0" in out and "level_1" in out
    rows = list(csv.DictReader((tmp_path / "res/results.csv").open()))
    assert [(r["model"], r["task"]) for r in rows][:3] == [("level_0", "derain"), ("level_0", "denoise_25"), ("level_0", "average")]
    assert main(["evaluate", str(run), "--data", str(data), "--tasks", "deblur", "--no-progress"]) == 2
    assert "deblur" in capsys.readouterr().err


def test_cli_evaluate_defaults_to_the_studys_data_and_tasks(data, tmp_path, capsys):
    """Issue 21: a study's checkpoint is scored on the study's own test set and tasks; a task it
    was not trained on is shown apart and left out of the average."""
    run = tmp_path / "runs" / "demo_00000000"
    run.mkdir(parents=True)
    paths.run_config(run).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "name": run.name, "preset": "smoke",
                                                 "data": str(data), "max_test_side": 0, "tasks": ["derain"]}))
    save_checkpoint(paths.model_file(paths.level_dir(paths.replicate_dir(run, 0), 0)), build_model("tiny"))
    assert main(["evaluate", str(run), "--device", "cpu", "--no-progress", "--limit", "1", "--out", str(tmp_path / "a")]) == 0
    rows = list(csv.DictReader((tmp_path / "a/results.csv").open()))
    assert [(r["task"], r["trained"]) for r in rows] == [("derain", "True")]
    argv = ["evaluate", str(run), "--tasks", "derain", "denoise_25", "--device", "cpu", "--no-progress", "--limit", "1"]
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "denoise_25" in out and "not trained on; not in the average" in out
    rows = {r["task"]: r for r in csv.DictReader((tmp_path / "b/results.csv").open())}
    assert rows["denoise_25"]["trained"] == "False" and rows["average"]["psnr"] == rows["derain"]["psnr"]
    outside = tmp_path / "tiny.pt"
    save_checkpoint(outside, build_model("tiny"))
    assert main(["evaluate", str(outside), "--no-progress"]) == 2
    assert "give --data DIR" in capsys.readouterr().err


def test_cli_choices_match_library():
    from mirl.commands import evaluate as ev_cmd, restore as re_cmd
    from mirl.device import DEVICE_CHOICES
    from mirl.scoring.metrics import CONVENTIONS

    assert ev_cmd.CONVENTION_CHOICES == tuple(CONVENTIONS)
    assert ev_cmd.DEVICE_CHOICES == re_cmd.DEVICE_CHOICES == DEVICE_CHOICES
    from mirl.commands import MODEL_PRESET_NAMES
    from mirl.models.config import MODEL_PRESETS

    assert set(MODEL_PRESET_NAMES) == set(MODEL_PRESETS)


def test_mean_psnr_counts_identical_images_and_refuses_nan():
    from mirl.errors import MirlError
    from mirl.scoring.evaluate import format_table, mean_psnr

    assert mean_psnr([20.0, 30.0]) == (25.0, 0)
    assert mean_psnr([20.0, float("inf"), 30.0]) == (25.0, 1)
    assert mean_psnr([float("inf")] * 2) == (float("inf"), 2)
    with pytest.raises(MirlError, match="NaN for 1 image"):
        mean_psnr([20.0, float("nan")])
    results = {"convention": "upstream", "test_crop": "center_crop_16",
               "tasks": {"derain": {"psnr": 25.0, "input_psnr": 24.0, "ssim": 0.9, "images": 3, "psnr_identical": 1}}}
    assert "1 image(s) equal their clean image (PSNR +inf) and are left out" in format_table({"m": results})


def test_evaluate_refuses_bad_tiles_before_loading(tmp_path, capsys):
    missing = tmp_path / "no-such.ckpt"
    for tile in ("0", "7", "16"):
        assert main(["evaluate", str(missing), "--data", str(tmp_path), "--tile", tile, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "--tile" in err and "no-such.ckpt" not in err and "Traceback" not in err


def test_limit_zero_means_every_image_and_negative_is_refused(data, tmp_path, capsys):
    """``--limit 0`` scores every image, as the study's ``eval_limit=0`` does; ``--limit -1`` is a
    one-line error before loading; neither is a ZeroDivisionError (issue 23, case 17)."""
    assert evaluate_model(Identity(), data, ["derain"], EvalSettings(limit=0), device="cpu", progress=False)["tasks"]["derain"]["images"] == 3
    save_checkpoint(tmp_path / "tiny.pt", build_model("tiny"))
    argv = ["evaluate", str(tmp_path / "tiny.pt"), "--data", str(data), "--tasks", "derain", "--device", "cpu", "--no-progress"]
    assert main([*argv, "--limit", "0"]) == 0
    assert "derain" in capsys.readouterr().out
    missing = tmp_path / "no-such.ckpt"
    assert main(["evaluate", str(missing), "--data", str(data), "--limit", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == ("mirl evaluate: error: --limit must be 0 (every image, as the study's eval_limit) or a positive number "
                   "of images per task, got -1\n")
    with pytest.raises(MirlError, match="got -2"):
        evaluate_model(Identity(), data, ["derain"], EvalSettings(limit=-2), device="cpu", progress=False)


def test_a_network_that_makes_images_worse_is_named_in_the_table(data):
    class Darken(Identity):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 0.5

    res = evaluate_model(Darken(), data, ["derain", "denoise_15"], device="cpu", progress=False)
    table = format_table({"darken": res})
    gain = res["tasks"]["derain"]["psnr"] - res["tasks"]["derain"]["input_psnr"]
    assert gain < 0 and f"{gain:+7.2f}" in table
    assert f"warning: darken derain: the restored images score {-gain:.2f} dB below the degraded input" in table
    identity = evaluate_model(Identity(), data, ["derain"], device="cpu", progress=False)
    assert "warning" not in format_table({"identity": identity})  # equal to the input is not worse


def test_cli_evaluate_scores_the_validation_split(data, tmp_path, capsys):
    """Issue 31: `--split val` scores val/ (laid out as test/), says so in the header and results,
    and a data set without val/ is refused in one line."""
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(checkpoint, build_model("tiny"))
    argv = ["evaluate", str(checkpoint), "--data", str(data), "--tasks", "derain", "--device", "cpu", "--no-progress"]
    assert main([*argv, "--split", "val"]) == 2
    assert "val does not exist" in capsys.readouterr().err
    clean = rgb(40, 52, 7)
    write_image(data / "val/derain/Rain100L/target/v_gt.png", clean)
    write_image(data / "val/derain/Rain100L/input/v_rainy.png", np.clip(clean.astype(int) + 30, 0, 255).astype(np.uint8))
    assert main([*argv, "--split", "val", "--out", str(tmp_path / "val")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("validation images (val)")
    result = json.loads((tmp_path / "val/results.json").read_text())
    assert [m["split"] for m in result["models"].values()] == ["val"]
    assert main(argv) == 0 and not capsys.readouterr().out.startswith("validation")
