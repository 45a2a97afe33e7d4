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


def _fake_slurm(folder: Path, states: dict[str, str]) -> str:
    """A PATH whose ``sacct`` answers as Slurm 22.05's ``sacct -n -P -X --format=JobID,State -j IDS``
    does (``4242|CANCELLED by 0``) and whose ``squeue`` knows no job (its real error, exit 1)."""
    import os

    folder.mkdir()
    answers = "".join(f'case ",$last," in *,{job},*) echo "{job}|{state}";; esac\n' for job, state in states.items())
    (folder / "sacct").write_text(f"#!/bin/sh\nfor last; do :; done\n{answers}exit 0\n")  # the ids come last
    (folder / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n")
    for tool in ("sacct", "squeue"):
        (folder / tool).chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize("slurm_state, shown", [("CANCELLED by 0", "stale lock"), ("RUNNING", "running")])
def test_a_lock_left_by_a_job_killed_on_another_host_is_a_stale_lock(smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                      monkeypatch: pytest.MonkeyPatch, slurm_state: str, shown: str) -> None:
    """scancel or SIGKILL on another host leaves the node's .mirl.lock (its pid is not of this host);
    the lock names its SLURM job, and mirl status asks sacct: a job that ended makes it a stale lock,
    shown with the fix; a running one is running."""
    from mirl.runlock import LOCK_FILE
    from mirl.study.launch import JOBS_FILE

    study = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, study, ignore=shutil.ignore_patterns("tensorboard"))
    node = paths.level_dir(paths.replicate_dir(study, 0), 2)
    paths.done_file(node).unlink()
    (node / LOCK_FILE).write_text(json.dumps({"pid": 4321, "host": "gpu-node-17", "since": "2026-12-01T10:00:00", "slurm_job": "4242"}))
    (study / JOBS_FILE).write_text(json.dumps({"r0-L2-main": {"job_id": "4242", "nodes": [[0, 2, "main"]], "after": ["r0-L1-main"]}}))
    monkeypatch.setenv("PATH", _fake_slurm(tmp_path / "bin", {"4242": slurm_state}))
    rows = _json_rows(study, capsys)
    assert [(r["level"], r["state"]) for r in rows] == [(0, "done"), (1, "done"), (2, shown)]
    assert main(["status", str(study)]) == 0
    out = capsys.readouterr().out
    assert f"1 {shown}" in out
    if shown == "stale lock":
        assert (f"stale lock: {node / LOCK_FILE} names SLURM job 4242, which ended (CANCELLED); no process runs this node: "
                "run the study again to resume it, or remove the file") in out, out
    else:
        assert "stale lock" not in out
