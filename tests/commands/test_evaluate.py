"""``mirl evaluate`` (mirl.commands.evaluate) on a finished smoke study: its defaults, the saved
images against the scores it reports, ``--convention`` and the option checks."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mirl import paths
from mirl.cli import main
from mirl.data.imageio import read_image


def _level(smoke_run: Path) -> Path:
    return paths.level_dir(paths.replicate_dir(smoke_run, 0), 2)


def _psnr(restored: np.ndarray, clean: np.ndarray, y: bool = False) -> float:
    """PSNR of two uint8 images: RGB in [0, 1] (upstream), or BT.601 luma on the 0-255 scale (y)."""
    a, b = restored.astype(np.float64) / 255, clean.astype(np.float64) / 255
    if y:
        weights = np.array([65.481, 128.553, 24.966])
        a, b = 16 + a @ weights, 16 + b @ weights
        return 10 * math.log10(255**2 / np.mean((a - b) ** 2))
    return 10 * math.log10(1 / np.mean((a - b) ** 2))


def _centre(img: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    top, left = (img.shape[0] - shape[0]) // 2, (img.shape[1] - shape[1]) // 2
    return img[top:top + shape[0], left:left + shape[1]]


def _check_saved_images(out: Path, data: Path, model: str, task: str, scores: dict, y: bool = False) -> None:
    """Every per-image score of ``task`` matches the PSNR of the saved PNG against its clean image."""
    assert scores["per_image"]
    for item in scores["per_image"]:
        restored = read_image(out / "images" / model / task / f"{item['name']}.png")[0]
        clean = read_image(data / "test" / "denoise" / f"{item['name']}.png")[0]
        assert restored.shape[0] % 16 == 0 and restored.shape[1] % 16 == 0
        got = _psnr(restored, _centre(clean, restored.shape), y)
        assert abs(got - item["psnr"]) < 0.02, (item, got)


def test_a_level_is_scored_on_its_studys_data_and_tasks(smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No ``--data`` nor ``--tasks``: the study's test set and trained tasks; ``--save-images``
    writes ``--limit`` images per task whose PSNR is the one reported; the average row is the
    mean over tasks; results.json records the checkpoint and its tasks."""
    config = json.loads(paths.run_config(smoke_run).read_text())
    data, trained = Path(config["data"]), config["tasks"]
    out = tmp_path / "res"
    assert main(["evaluate", str(_level(smoke_run)), "--limit", "2", "--save-images", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "metric convention: upstream" in printed and f"wrote {out / 'results.csv'} and {out / 'results.json'}" in printed
    results = json.loads((out / "results.json").read_text())["models"]["level_2"]
    assert results["checkpoint"] == str(paths.model_file(_level(smoke_run)))
    assert results["trained_tasks"] == trained and list(results["tasks"]) == trained
    assert Path(results["data_root"]).resolve() == data.resolve()
    for task in trained:
        assert results["tasks"][task]["images"] == 2
        assert len(list((out / "images" / "level_2" / task).rglob("*.png"))) == 2
    _check_saved_images(out, data, "level_2", "denoise_25", results["tasks"]["denoise_25"])
    rows = {r["task"]: r for r in csv.DictReader((out / "results.csv").open())}
    mean = sum(results["tasks"][t]["psnr"] for t in trained) / len(trained)
    assert float(rows["average"]["psnr"]) == pytest.approx(mean, abs=1e-4)
    assert int(rows["average"]["images"]) == 2 * len(trained)


def test_the_y_convention_scores_luma(smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = Path(json.loads(paths.run_config(smoke_run).read_text())["data"])
    out = tmp_path / "y"
    assert main(["evaluate", str(_level(smoke_run)), "--tasks", "denoise_25", "--convention", "y", "--limit", "1",
                 "--save-images", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    assert "metric convention: y" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["conventions"] == ["y"]
    _check_saved_images(out, data, "level_2", "denoise_25", results["models"]["level_2"]["tasks"]["denoise_25"], y=True)


def test_save_images_without_out_is_refused_before_loading(smoke_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    import mirl.models

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checkpoint was loaded before the options were checked")

    monkeypatch.setattr(mirl.models, "load_checkpoint", no_load)
    assert main(["evaluate", str(_level(smoke_run)), "--save-images", "--no-progress"]) == 2
    assert capsys.readouterr().err == "mirl evaluate: error: --save-images needs --out DIR\n"


def test_the_wrong_model_size_is_one_line_naming_it(smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The smoke study's network is tiny: ``--model small`` is refused, nothing written."""
    assert main(["evaluate", str(_level(smoke_run)), "--model", "small", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl evaluate: error: ") and err.count("\n") == 1
    assert "model.pt" in err and "preset 'small' (given)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option, value", [("--convention", "psnr_rgb"), ("--device", "tpu"), ("--precision", "fp16")])
def test_bad_choices_are_argparse_errors(option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(tmp_path), option, value])
    err = capsys.readouterr().err
    assert info.value.code == 2 and option in err and repr(value) in err
