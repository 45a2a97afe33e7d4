"""mirl.data.resolve: task repeats, and the data set folder of a study setting or a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirl import paths
from mirl.data import ALL_IN_ONE, DEMO_REPEATS, PUBLISHED_REPEATS, TASKS, TaskError
from mirl.data.resolve import (BUILTIN, DataFolderError, available_tasks, dataset_root, is_builtin_dataset, parse_repeats,
                               run_data_root, uses_builtin_corpus)
from mirl.errors import MirlError


def test_parse_repeats_named_tables_are_copies() -> None:
    published = parse_repeats("published")
    assert published == PUBLISHED_REPEATS and parse_repeats("demo") == DEMO_REPEATS
    published["derain"] = 0
    assert PUBLISHED_REPEATS["derain"] != 0  # the module's table is not handed out


def test_parse_repeats_overrides_named_tasks_and_keeps_the_rest() -> None:
    out = parse_repeats("derain=8, denoise=2")
    assert out["derain"] == 8 and all(out[f"denoise_{s}"] == 2 for s in (15, 25, 50))
    assert {t: out[t] for t in ("dehaze", "jpeg")} == {t: PUBLISHED_REPEATS[t] for t in ("dehaze", "jpeg")}
    assert set(out) == set(TASKS)


@pytest.mark.parametrize("spec,bad", [("derain", "'derain'"), ("derain=x", "'derain=x'"), ("derain=-1", "'derain=-1'")])
def test_parse_repeats_bad_entry_names_it_and_shows_the_form(spec: str, bad: str) -> None:
    with pytest.raises(MirlError, match=f"bad repeats entry {bad}; use published, demo, or task=factor"):
        parse_repeats(spec)


def test_parse_repeats_unknown_task_is_a_task_error() -> None:
    with pytest.raises(TaskError, match="unknown task 'deblur'"):
        parse_repeats("deblur=3")


def test_dataset_root_returns_an_existing_folder(tmp_path: Path) -> None:
    assert dataset_root(tmp_path) == tmp_path
    assert dataset_root(str(tmp_path), 64) == tmp_path  # max_test_side only matters for builtin


def test_dataset_root_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataFolderError, match=r"data folder .*nowhere does not exist; give a folder in the published layout") as info:
        dataset_root(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, MirlError)


def test_builtin_without_build_uses_the_folder_under_base(tmp_path: Path) -> None:
    made = paths.builtin_dataset_dir(64, tmp_path)
    with pytest.raises(DataFolderError, match=rf"{made.name}: the built-in data set is missing; re-run the study"):
        dataset_root(BUILTIN, 64, base=tmp_path, build=False)
    made.mkdir()
    assert dataset_root(BUILTIN, 64, base=tmp_path, build=False) == made
    (tmp_path / "builtin").mkdir()
    assert dataset_root(BUILTIN, None, base=tmp_path, build=False) == tmp_path / "builtin"  # full-size test images


def _study(tmp_path: Path, config: dict) -> Path:
    run = tmp_path / "runs" / "smoke_0123abcd"
    node = paths.level_dir(paths.replicate_dir(run, 0), 1)
    node.mkdir(parents=True)
    paths.run_config(run).write_text(json.dumps(config))
    return run


def test_run_data_root_reads_the_study_config_from_any_inner_folder(tmp_path: Path) -> None:
    data = tmp_path / "mydata"
    data.mkdir()
    run = _study(tmp_path, {"data": str(data)})
    node = paths.level_dir(paths.replicate_dir(run, 0), 1)
    assert run_data_root(run) == data and run_data_root(node) == data


def test_run_data_root_builtin_is_looked_up_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRL_HOME", str(tmp_path))
    run = _study(tmp_path, {"data": "builtin", "max_test_side": 64})
    with pytest.raises(DataFolderError, match="builtin_test64: the built-in data set is missing"):
        run_data_root(run)
    assert not (tmp_path / "datasets").exists()
    (tmp_path / "datasets" / "builtin_test64").mkdir(parents=True)
    assert run_data_root(run) == tmp_path.resolve() / "datasets" / "builtin_test64"


def test_uses_builtin_corpus_from_config_or_folder(tmp_path: Path) -> None:
    assert uses_builtin_corpus({}) and uses_builtin_corpus({"data": "builtin"}) and not uses_builtin_corpus(None)
    assert not uses_builtin_corpus({"data": str(tmp_path)})
    assert not uses_builtin_corpus(_study(tmp_path, {"data": str(tmp_path)}))
    assert uses_builtin_corpus(_study(tmp_path / "b", {"data": "builtin"}))


def test_is_builtin_dataset_reads_the_manifest(tmp_path: Path) -> None:
    assert not is_builtin_dataset(tmp_path)
    (tmp_path / "mirl_dataset.json").mkdir()  # not a file
    assert not is_builtin_dataset(tmp_path)
    (tmp_path / "mirl_dataset.json").rmdir()
    (tmp_path / "mirl_dataset.json").write_text(json.dumps({"format": "other"}))
    assert not is_builtin_dataset(tmp_path)
    (tmp_path / "mirl_dataset.json").write_text(json.dumps({"format": "mirl.dataset"}))
    assert is_builtin_dataset(tmp_path)


def test_is_builtin_dataset_with_a_damaged_manifest_is_false(tmp_path: Path) -> None:
    (tmp_path / "mirl_dataset.json").write_text("{broken")
    assert is_builtin_dataset(tmp_path) is False


def test_available_tasks_from_the_test_folders(tmp_path: Path) -> None:
    for family in ("derain", "denoise"):
        (tmp_path / "test" / family).mkdir(parents=True)
    assert available_tasks(tmp_path) == ["denoise_15", "denoise_25", "denoise_50", "derain"]
    assert available_tasks(tmp_path, ["all_in_one"]) == list(ALL_IN_ONE)  # named tasks are not checked on disk


def test_available_tasks_without_test_folders_names_the_root(tmp_path: Path) -> None:
    (tmp_path / "train" / "derain").mkdir(parents=True)
    with pytest.raises(DataFolderError, match=rf"{tmp_path.name}: no test/<task> folders"):
        available_tasks(tmp_path)
