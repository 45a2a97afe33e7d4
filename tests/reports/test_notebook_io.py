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
from mirl.reports.notebook_io import (MAIN_FIGURE, RESULTS_FILE, StudyNotFound, find_sibling, find_study, headline_html,
                                      jsonable, resolve_checkpoint, resolve_output_dir, save_results, study_overrides)


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


def fake_study(root: Path, preset: str = "smoke", overrides: dict | None = None, unfinished: int = 0) -> Path:
    """A study folder as ``mirl lottery`` leaves it, without training: its ``config.json`` and a
    finished marker (and a stand-in ``model.pt``) in every node but the last ``unfinished`` ones."""
    from mirl.study.config import config_hash, run_name, study_preset
    from mirl.study.lottery import study_nodes

    cfg = study_preset(preset, overrides)
    study = root / run_name(preset, cfg)
    study.mkdir(parents=True)
    paths.run_config(study).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "name": study.name, "preset": preset,
                                                   "hash": config_hash(cfg), **cfg.to_dict()}))
    nodes = study_nodes(cfg)
    for r, level, branch in nodes[:len(nodes) - unfinished]:
        node = paths.level_dir(paths.replicate_dir(study, r), level, branch)
        node.mkdir(parents=True)
        paths.model_file(node).write_bytes(b"x")
        paths.done_file(node).write_text("{}")
    return study


@pytest.fixture()
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding a study must never train one."""
    import mirl.study.lottery

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a report started training")

    monkeypatch.setattr(mirl.study.lottery, "run_study", refuse)


def test_no_checkpoint_means_the_last_finished_level_of_the_presets_study(tmp_path: Path, no_training: None) -> None:
    study = fake_study(tmp_path / "runs", overrides={"seed": 2})
    found = resolve_checkpoint(None, preset="smoke", runs_dir=tmp_path / "runs", overrides={"seed": 2})
    last = max(paths.level_numbers(paths.replicate_dir(study, 0)))
    assert found == paths.model_file(paths.level_dir(paths.replicate_dir(study, 0), last))
    assert resolve_checkpoint(None, runs_dir=tmp_path / "runs", study=study.name) == found


def test_a_missing_study_is_refused_with_the_lottery_command_that_makes_it(tmp_path: Path, no_training: None) -> None:
    """Issue 34, part 1: notebook 02 with ``rewind_steps: 3`` trained a whole new study, silently."""
    runs = tmp_path / "runs"
    default = fake_study(runs)
    wanted = {"rounds": 3, "reset": "rewind", "rewind_steps": 3}
    with pytest.raises(StudyNotFound, match=r"no smoke study with these settings in .*; reports never train: make it with: "
                       rf"mirl lottery --preset smoke --set rounds=3 reset=rewind rewind_steps=3 --out {runs}$"):
        find_study(None, "smoke", wanted, runs)
    assert list(runs.iterdir()) == [default], "finding a study made a folder"
    made = fake_study(runs, overrides=wanted, unfinished=1)
    with pytest.raises(StudyNotFound, match=rf"{made} lacks 1 finished node\(s\) .*finish it with: mirl lottery --preset smoke "
                       r"--set rounds=3 reset=rewind rewind_steps=3 --out"):
        find_study(None, "smoke", wanted, runs)


def test_a_study_is_found_by_folder_name_or_hash_and_read_with_its_own_settings(tmp_path: Path, no_training: None) -> None:
    runs = tmp_path / "runs"
    study = fake_study(runs, overrides={"rounds": 1})
    assert find_study(study) == find_study(study.name, runs_dir=runs) == find_study(paths.run_hash(study), runs_dir=runs) == study
    assert find_study(study, preset="paper") == study  # the folder's own preset, not the notebook's default
    with pytest.raises(StudyNotFound, match=r"nope: no study folder there or in .*runs/<preset>_<hash>"):
        find_study("nope", runs_dir=runs)
    with pytest.raises(StudyNotFound, match=rf"{study.name} was not run with rounds=3; a report reads one study: leave those "
                       r"settings out, or make that study with: mirl lottery --preset smoke --set rounds=3 --out"):
        find_study(study, overrides={"rounds": 3})
    with pytest.raises(StudyNotFound, match=r"lacks 1 finished node\(s\) \(first: replicate 0, level 1, random_reinit\); "
                       r"reports never train: finish it with: mirl lottery --preset smoke --set rounds=1 branches=random_reinit"):
        find_study(study, overrides={"branches": "random_reinit"})
    grown = {"rounds": 1, "branches": "random_reinit"}
    assert find_study(fake_study(tmp_path / "other", overrides=grown), overrides={"branches": "random_reinit"}).parent == tmp_path / "other"


def test_a_sibling_study_has_the_studys_settings_and_the_compared_ones(tmp_path: Path, no_training: None) -> None:
    runs = tmp_path / "runs"
    study = fake_study(runs, overrides={"rounds": 1})
    with pytest.raises(StudyNotFound, match=rf"make it with: mirl lottery --preset smoke --set rounds=1 scope=layerwise --out {runs}$"):
        find_sibling(study, {"scope": "layerwise"})
    sibling = fake_study(runs, overrides={"rounds": 1, "scope": "layerwise"})
    assert find_sibling(study, {"scope": "layerwise"}) == sibling


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
