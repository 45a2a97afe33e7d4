"""mirl.paths: the project folders and the names inside a study folder, on tmp trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirl import paths
from tests.conftest import REPO


def _node(run: Path, rep: int, level: int, branch: str = paths.MAIN, done: bool = True) -> Path:
    node = paths.level_dir(paths.replicate_dir(run, rep), level, branch)
    node.mkdir(parents=True)
    if done:
        paths.done_file(node).write_text("{}")
    return node


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    """A study folder: replicate 0 with finished levels 0 and 2, unfinished level 1, a branch at 2."""
    run = tmp_path / "smoke_0123abcd"
    run.mkdir()
    paths.run_config(run).write_text("{}")
    _node(run, 0, 0)
    _node(run, 0, 1, done=False)
    _node(run, 0, 2)
    _node(run, 0, 2, "random_prune")
    _node(run, 0, 10, "one_shot")
    return run


def test_project_root_follows_mirl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRL_HOME", str(tmp_path))
    assert paths.project_root() == tmp_path.resolve()
    assert (paths.runs_dir(), paths.datasets_dir(), paths.reports_dir()) == tuple(
        tmp_path.resolve() / n for n in ("runs", "datasets", "reports"))
    monkeypatch.setenv("MIRL_HOME", "~/somewhere")
    assert paths.project_root() == (Path.home() / "somewhere").resolve()


def test_project_root_without_mirl_home_is_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIRL_HOME", raising=False)
    assert paths.project_root() == REPO


def test_builtin_dataset_dir_names() -> None:
    assert paths.builtin_dataset_dir(224, "d") == Path("d/builtin_test224")
    assert paths.builtin_dataset_dir(None, "d") == paths.builtin_dataset_dir(0, "d") == Path("d/builtin")


def test_level_numbers_counts_finished_levels_of_a_branch(study: Path) -> None:
    rep = paths.replicate_dir(study, 0)
    assert paths.level_numbers(rep) == [0, 2]
    assert paths.level_numbers(rep, finished_only=False) == [0, 1, 2]
    assert paths.level_numbers(rep, branch="random_prune") == [2]
    assert paths.level_numbers(rep, branch="one_shot") == [10]  # numeric, not string, order
    assert paths.level_numbers(study / "replicate_9") == []


def test_level_numbers_ignores_stray_folders_and_files(study: Path) -> None:
    rep = paths.replicate_dir(study, 0)
    (rep / "level_x" / "main").mkdir(parents=True)
    (rep / "level_3").write_text("a file, not a folder")
    (rep / "old_level_4" / "main").mkdir(parents=True)
    assert paths.level_numbers(rep, finished_only=False) == [0, 1, 2]


def test_is_finished_follows_the_done_file(study: Path) -> None:
    node = paths.level_dir(paths.replicate_dir(study, 0), 1)
    assert not paths.is_finished(node)
    paths.done_file(node).write_text("{}")
    assert paths.is_finished(node) and paths.level_numbers(paths.replicate_dir(study, 0)) == [0, 1, 2]


def test_branch_names_put_main_first(study: Path) -> None:
    rep = paths.replicate_dir(study, 0)
    (rep / "level_2" / ".tmp_build").mkdir()
    (rep / "level_2" / "aaa").mkdir()
    assert paths.branch_names(rep, 2) == ["main", "aaa", "random_prune"]
    assert paths.branch_names(rep, 7) == []


def test_replicate_numbers_and_names(study: Path) -> None:
    paths.replicate_dir(study, 3).mkdir()
    (study / "replicate_b").mkdir()
    assert paths.replicate_numbers(study) == [0, 3]
    assert paths.replicate_number("x/replicate_12") == 12 and paths.replicate_number("replicate_") is None
    assert paths.replicate_numbers(study / "absent") == []


def test_study_of_and_node_of_from_inner_folders(study: Path) -> None:
    node = paths.level_dir(paths.replicate_dir(study, 0), 2, "random_prune")
    assert paths.study_of(node) == study.absolute() and paths.study_of(paths.mask_file(node)) == study.absolute()
    assert paths.study_of(study.parent) is None
    assert paths.node_of(node) == (paths.replicate_dir(study, 0), 2, "random_prune")
    assert paths.node_of(paths.replicate_dir(study, 0)) is None and paths.node_of(study / "level_2" / "main") is None
    assert paths.is_run_dir(study) and not paths.is_run_dir(node)
    assert paths.run_hash(study) == "0123abcd"


def test_old_layout_is_level_folders_right_under_the_study(tmp_path: Path, study: Path) -> None:
    assert not paths.old_layout(study)
    old = tmp_path / "old_run"
    (old / "level_0").mkdir(parents=True)
    assert paths.old_layout(old) and not paths.old_layout(tmp_path / "absent")


def test_level_file_names_and_result_files(tmp_path: Path) -> None:
    node = paths.level_dir(paths.replicate_dir(tmp_path / "r_1", 1), 4, "stability")
    assert node == tmp_path / "r_1" / "replicate_1" / "level_4" / "stability"
    files = {f(node).name for f in (paths.mask_file, paths.model_file, paths.metrics_file, paths.sparsity_file,
                                    paths.train_log_file, paths.train_state_file, paths.reused_file, paths.done_file)}
    assert len(files) == 8
    assert set(paths.LEVEL_RESULT_FILES) < files
    assert "done.json" not in paths.LEVEL_RESULT_FILES and "train_state.pt" not in paths.LEVEL_RESULT_FILES
    assert paths.init_weights(node.parent.parent) != paths.rewind_weights(node.parent.parent)
