"""``mirl status`` (mirl.commands.status) on a finished smoke study and copies of it with a level
unfinished or gone: the table, ``--json`` and a damaged study folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mirl import paths
from mirl.cli import main


def _nodes_on_disk(study: Path) -> list[tuple[int, int, str]]:
    """(replicate, level, branch) of every node folder under ``study``, from the folder names."""
    found = []
    for node in study.glob("replicate_*/level_*/*"):
        if node.is_dir():
            found.append((int(node.parents[1].name.split("_")[1]), int(node.parent.name.split("_")[1]), node.name))
    return sorted(found)


def _json_rows(study: Path, capsys: pytest.CaptureFixture) -> list[dict]:
    assert main(["status", str(study), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_finished_study_is_all_done(smoke_run: Path, capsys: pytest.CaptureFixture) -> None:
    """One JSON object per node folder, each done with no SLURM job; the table says so too."""
    rows = _json_rows(smoke_run, capsys)
    nodes = _nodes_on_disk(smoke_run)
    assert nodes and sorted((r["replicate"], r["level"], r["branch"]) for r in rows) == nodes
    assert all(r["state"] == "done" and r["job_id"] is None and r["slurm_state"] is None for r in rows)
    assert main(["status", str(smoke_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["replicate", "level", "branch", "state"]
    assert len(lines) == len(nodes) + 2 and lines[-1] == f"{len(nodes)} done of {len(nodes)} nodes"
    for line, (replicate, level, branch) in zip(lines[1:-1], nodes):
        assert line.split() == [str(replicate), str(level), branch, "done", "-", "-"]


def test_an_unfinished_and_a_missing_level_are_told_apart(smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A level without done.json is started; a level whose folder is gone is missing."""
    study = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, study, ignore=shutil.ignore_patterns("tensorboard"))
    replicate = paths.replicate_dir(study, 0)
    paths.done_file(paths.level_dir(replicate, 2)).unlink()
    states = {(r["level"], r["branch"]): r["state"] for r in _json_rows(study, capsys)}
    assert states == {(0, "main"): "done", (1, "main"): "done", (2, "main"): "started"}
    shutil.rmtree(paths.level_dir(replicate, 2))
    shutil.rmtree(paths.level_dir(replicate, 1))
    assert main(["status", str(study)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 done, 2 missing of 3 nodes"


def test_a_study_config_without_its_settings_is_named(smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tmp_path / smoke_run.name
    study.mkdir()
    config = json.loads(paths.run_config(smoke_run).read_text())
    del config["non_default"]
    paths.run_config(study).write_text(json.dumps(config))
    assert main(["status", str(study)]) == 2
    err = capsys.readouterr().err
    assert err == (f"mirl status: error: {paths.run_config(study)} is not a study's settings (no 'non_default'); "
                   "restore it or give another folder\n")


def test_the_study_argument_is_required(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["status"])
    assert info.value.code == 2 and "RUN" in capsys.readouterr().err


@pytest.mark.parametrize("edit", [{"replicates": 1e9}, {"non_default": {"rounds": 100000}}, {"branches": ["no_such_branch"]}])
def test_absurd_settings_in_config_json_are_named_not_run(smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          edit: dict) -> None:
    """A config.json edited to replicates=1e9 made mirl status hang; settings out of range are named
    in one line with the file."""
    study = tmp_path / smoke_run.name
    study.mkdir()
    config = json.loads(paths.run_config(smoke_run).read_text())
    for key, value in edit.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    paths.run_config(study).write_text(json.dumps(config))
    assert main(["status", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mirl status: error: {paths.run_config(study)} holds a bad setting (bad value ") and err.count("\n") == 1, err
    assert "restore it or give another folder" in err
