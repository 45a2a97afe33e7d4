"""mirl.analysis.results: a finished smoke study read into tables whose numbers are its files'; folder
resolution and the errors for folders that are not (or no longer) readable studies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mirl import paths
from mirl.analysis import results
from mirl.errors import MirlError


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _nodes(study: Path) -> list[Path]:
    replicate = paths.replicate_dir(study, 0)
    return [paths.level_dir(replicate, level) for level in (0, 1, 2)]


def test_the_metrics_table_holds_every_score_of_every_levels_metrics_json(smoke_run: Path) -> None:
    table = results.metrics_table(smoke_run, label="ticket")
    expected = []
    for level, node in enumerate(_nodes(smoke_run)):
        metrics = _json(paths.metrics_file(node))
        for task, scores in metrics["tasks"].items():
            expected.append((level, task, metrics["density_prunable"], metrics["density_trainable"], scores["psnr"],
                             scores["ssim"], scores["input_psnr"], scores["input_ssim"], scores["images"], metrics["convention"]))
    got = [tuple(row) for row in table[["level", "task", "remaining_prunable", "remaining_trainable", "psnr", "ssim", "input_psnr",
                                        "input_ssim", "images", "convention"]].itertuples(index=False)]
    assert got == expected
    assert set(table["run"]) == {smoke_run.name} and set(table["label"]) == {"ticket"}
    assert list(table["remaining_prunable"].drop_duplicates()) == pytest.approx([1.0, 0.8, 0.64], abs=1e-3)


def test_per_image_scores_and_the_levels_metrics_are_the_files(smoke_run: Path) -> None:
    node = _nodes(smoke_run)[2]
    metrics = _json(paths.metrics_file(node))
    assert results.load_metrics(smoke_run, 2) == metrics
    assert results.load_sparsity(paths.replicate_dir(smoke_run, 0), 2) == _json(paths.sparsity_file(node))
    table = results.per_image_table(smoke_run, 2)
    expected = [(task, item["name"], item["psnr"], item["ssim"]) for task, scores in metrics["tasks"].items()
                for item in scores["per_image"]]
    assert [tuple(r) for r in table[["task", "name", "psnr", "ssim"]].itertuples(index=False)] == expected and expected
    assert set(table["convention"]) == {metrics["convention"]}


def test_the_sparsity_table_and_density_evolution_count_the_saved_masks(smoke_run: Path) -> None:
    table = results.sparsity_table(smoke_run)
    evolution = results.density_evolution(smoke_run)
    assert list(evolution.columns) == [0, 1, 2]
    for level, node in enumerate(_nodes(smoke_run)):
        mask = torch.load(paths.mask_file(node), weights_only=True)
        assert results.level_mask(smoke_run, level).keys() == mask.keys()
        rows = table[table["level"] == level].set_index("tensor")
        assert set(rows.index) == set(mask)
        for name, m in mask.items():
            assert (rows.loc[name, "kept"], rows.loc[name, "total"]) == (int(m.sum()), m.numel()), (level, name)
            assert evolution.loc[name, level] == pytest.approx(int(m.sum()) / m.numel())
    kept = table.groupby("level")["kept"].sum() / table.groupby("level")["total"].sum()
    assert list(kept) == pytest.approx([1.0, 0.8, 0.64], abs=1e-3)
    first = list(evolution.index[:2])
    assert list(results.density_evolution(smoke_run, tensors=[first[1], "no.such", first[0]]).index) == [first[1], first[0]]


def test_study_level_facts_come_from_its_config_and_metrics(smoke_run: Path) -> None:
    config = _json(paths.run_config(smoke_run))
    last = _json(paths.metrics_file(_nodes(smoke_run)[2]))
    assert results.tasks_of(smoke_run) == list(last["tasks"])
    assert results.branches_of(smoke_run) == ["main"]
    assert results.levels(smoke_run) == [0, 1, 2] and results.levels(smoke_run, branch="random_reinit") == []
    seconds = sum(_json(paths.metrics_file(n))["train"]["level_seconds"] for n in _nodes(smoke_run))
    assert results.study_seconds(smoke_run) == pytest.approx(seconds) and seconds > 0
    origin = results.checkpoint_origin(paths.model_file(_nodes(smoke_run)[1]))
    assert origin.study == smoke_run and list(origin.trained_tasks) == config["tasks"]
    runs = results.list_runs(smoke_run.parent)
    row = runs[runs["path"] == str(smoke_run)].iloc[0]
    assert (row["name"], row["hash"], row["replicates"], row["levels"], row["last_level"]) == (smoke_run.name, config["hash"], 1, [0, 1, 2], 2)
    # the label names the settings that differ from the preset: the data folder here, and a changed fraction
    assert results.run_label(config) == f"smoke (data={config['data']})"
    assert results.run_label({**config, "fraction": 0.5}) == f"smoke (data={config['data']}, fraction=0.5)"


# ---- folders made by hand ---------------------------------------------------------------------------


def _study(root: Path, config: dict | None = None) -> Path:
    study = root / "smoke_12345678"
    study.mkdir(parents=True)
    paths.run_config(study).write_text(json.dumps({"format": paths.LAYOUT_VERSION, "preset": "smoke", "seed": 10, **(config or {})}))
    return study


def _finish(node: Path, metrics: str | None = "{}") -> None:
    node.mkdir(parents=True, exist_ok=True)
    if metrics is not None:
        paths.metrics_file(node).write_text(metrics)
    paths.done_file(node).write_text("{}")


def test_a_folder_outside_any_study_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}/x is not inside a study folder: no config\.json in it or above it"):
        results.study_dir(tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="not inside a study folder"):
        results.metrics_table(tmp_path)


def test_a_study_of_the_old_flat_layout_is_refused_with_the_command_to_recreate_it(tmp_path: Path) -> None:
    study = _study(tmp_path, {"preset": "quickstart"})
    (study / "level_0").mkdir()
    with pytest.raises(MirlError, match=rf"^{study} is a study of an older mirl layout .*`mirl lottery --preset quickstart --out <new folder>`"):
        results.levels(study)


def test_folders_inside_a_study_resolve_to_their_replicate_and_its_seed(tmp_path: Path) -> None:
    study = _study(tmp_path)
    replicate = paths.replicate_dir(study, 1)
    node = paths.level_dir(replicate, 2, "one_shot")
    node.mkdir(parents=True)
    assert results.replicate_of(study) == paths.replicate_dir(study, 0)
    assert results.replicate_of(node) == replicate == results.replicate_of(replicate)
    assert results.load_config(node)["seed"] == 11 and results.load_config(node)["replicate"] == 1
    assert results.load_config(study)["seed"] == 10 and "replicate" not in results.load_config(study)


def test_a_branch_chain_starts_from_mains_dense_level(tmp_path: Path) -> None:
    study = _study(tmp_path)
    replicate = paths.replicate_dir(study, 0)
    for level in (0, 1):
        _finish(paths.level_dir(replicate, level))
    _finish(paths.level_dir(replicate, 1, "random_prune"))
    paths.level_dir(replicate, 2, "random_prune").mkdir(parents=True)  # unfinished
    assert results.levels(study, branch="random_prune") == [0, 1]
    assert results.levels(study, finished_only=False, branch="random_prune") == [0, 1, 2]
    assert results.chain_node(study, 0, "random_prune") == paths.level_dir(replicate, 0)
    assert results.chain_node(study, 1, "random_prune") == paths.level_dir(replicate, 1, "random_prune")
    assert results.branches_of(study) == ["main", "random_prune"]


def test_a_finished_level_without_its_metrics_names_the_file_and_the_fix(tmp_path: Path) -> None:
    study = _study(tmp_path)
    node = paths.level_dir(paths.replicate_dir(study, 0), 0)
    _finish(node, metrics=None)
    with pytest.raises(MirlError, match=rf"^{paths.metrics_file(node)} is missing from a finished level; remove {paths.done_file(node)}"):
        results.metrics_table(study)


def test_a_damaged_metrics_file_names_itself_and_says_how_to_redo_the_level(tmp_path: Path) -> None:
    study = _study(tmp_path)
    node = paths.level_dir(paths.replicate_dir(study, 0), 0)
    _finish(node, metrics="{\"tasks\": ")
    with pytest.raises(MirlError) as info:
        results.metrics_table(study)
    assert str(info.value).startswith(str(paths.metrics_file(node))) and results.REDO_LEVEL in str(info.value)


def test_a_run_label_without_a_known_preset_lists_the_recorded_non_defaults() -> None:
    assert results.run_label({"preset": "no_such_preset", "non_default": {"rounds": 3, "tasks": ["a", "b"]}}) == \
        "no_such_preset (rounds=3, tasks=a,b)"
    assert results.run_label({"name": "old_run", "non_default": {}}) == "old_run"


def test_a_checkpoint_outside_a_study_was_trained_on_the_published_tasks(tmp_path: Path) -> None:
    from mirl.data import ALL_IN_ONE

    origin = results.checkpoint_origin(tmp_path / "published.ckpt")
    assert origin == results.CheckpointOrigin(None, tuple(ALL_IN_ONE)) and origin.data_root() is None
