"""mirl.reports.notebook_io: folders and checkpoints a notebook resolves, its overrides, results.json."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mirl import paths
from mirl.reports.notebook_io import (MAIN_FIGURE, RESULTS_FILE, headline_html, jsonable, resolve_checkpoint,
                                      resolve_output_dir, save_results, study_overrides)


def test_a_checkpoint_that_is_not_a_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "smoke_00000000" / "model.pt"
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {missing}; give a model.pt"):
        resolve_checkpoint(missing)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is a folder; give its model.pt"):
        resolve_checkpoint(tmp_path)  # a folder is not a checkpoint


def test_a_checkpoint_file_is_returned_as_given_without_running_anything(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"x")
    assert resolve_checkpoint(str(checkpoint), preset="no_such_preset") == checkpoint


def _finished_study(root: Path, levels: int) -> Path:
    """A study folder whose main chain has ``levels`` finished levels and one unfinished one after them."""
    study = root / "smoke_0badc0de"
    study.mkdir(parents=True)
    paths.run_config(study).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "preset": "smoke"}))
    for level in range(levels + 1):
        node = paths.level_dir(paths.replicate_dir(study, 0), level)
        node.mkdir(parents=True)
        paths.model_file(node).write_bytes(b"x")
        if level < levels:
            paths.done_file(node).write_text("{}")
    return study


def test_no_checkpoint_means_the_last_finished_level_of_the_presets_study(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import mirl.study.lottery

    study = _finished_study(tmp_path / "runs", levels=3)
    calls = []

    def run_study(preset: str, overrides: dict, out: object, progress: bool) -> Path:
        calls.append((preset, overrides, out, progress))
        return study

    monkeypatch.setattr(mirl.study.lottery, "run_study", run_study)
    found = resolve_checkpoint(None, preset="smoke", runs_dir=tmp_path / "runs", overrides={"seed": 2})
    assert found == paths.model_file(paths.level_dir(paths.replicate_dir(study, 0), 2))  # level 3 is not finished
    assert calls == [("smoke", {"seed": 2}, tmp_path / "runs", False)]


def test_an_output_folder_is_created_and_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = resolve_output_dir(os.path.join("a", "b"), "01_study")
    assert out == tmp_path / "a" / "b" and out.is_dir() and out.is_absolute()


def test_study_overrides_drop_only_none_and_keep_falsy_settings() -> None:
    base = {"seed": 1, "rounds": 5}
    merged = study_overrides(base, rounds=0, amp=False, data="", scope=None)
    assert merged == {"seed": 1, "rounds": 0, "amp": False, "data": ""}
    assert base == {"seed": 1, "rounds": 5}  # the caller's mapping is not changed
    assert study_overrides(None) == {}


def test_jsonable_makes_nested_numpy_torch_and_path_values_json_ready() -> None:
    value = {1: (np.int64(3), torch.tensor(0.5)), "p": {Path("runs/a"), }, "n": [float("nan"), np.bool_(True)]}
    out = jsonable(value)
    assert out == {"1": [3, 0.5], "p": ["runs/a"], "n": [None, True]}
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_a_numpy_or_torch_nan_becomes_null_like_a_python_nan() -> None:
    out = jsonable({"a": np.float32("nan"), "b": np.float64("nan"), "c": torch.tensor(float("nan"))})
    json.dumps(out, allow_nan=False)  # results.json must be strict JSON (NaN -> None)
    assert out == {"a": None, "b": None, "c": None}


def test_save_results_writes_headline_parameters_extras_and_the_figure(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [1, 0])
    out = tmp_path / "new" / "report"
    path = save_results(out, {"gain (dB)": np.float32(1.5)}, main_figure=fig, parameters={"runs": [Path("r")]},
                        images=(np.int32(4),))
    assert path == out / RESULTS_FILE
    record = json.loads(path.read_text())
    assert record["headline"] == {"gain (dB)": 1.5} and record["parameters"] == {"runs": ["r"]} and record["images"] == [4]
    assert record["main_figure"] == MAIN_FIGURE and (out / MAIN_FIGURE).read_bytes()[:4] == b"\x89PNG"
    written = dt.datetime.fromisoformat(record["written"])
    assert written.tzinfo is not None and abs((dt.datetime.now(dt.timezone.utc) - written).total_seconds()) < 60
    again = json.loads(save_results(out, {"gain (dB)": 2.0}).read_text())
    assert again["headline"] == {"gain (dB)": 2.0} and "main_figure" not in again and "images" not in again


def test_headline_html_escapes_keys_values_and_caption() -> None:
    page = headline_html({"<gain>": "+1 & more", "n": 3}, title="A <b>title</b>").data
    assert "<caption>A &lt;b&gt;title&lt;/b&gt;</caption>" in page
    assert "<tr><th>&lt;gain&gt;</th><td>+1 &amp; more</td></tr><tr><th>n</th><td>3</td></tr>" in page
