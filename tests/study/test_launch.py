"""The study as a job graph (mirl.study.launch): its shape. Running it (N local processes, SLURM) is in
tests/study/test_launch_slurm.py, which ``pytest -k slurm`` selects."""

from __future__ import annotations

import pytest

from mirl.study.config import study_preset
from mirl.study.launch import job_graph
from mirl.study.lottery import study_nodes


def test_the_graph_runs_every_node_once_after_what_it_starts_from() -> None:
    cfg = study_preset("smoke", {"replicates": 2, "rounds": 2, "branches": "random_reinit,one_shot,stability"})
    jobs = job_graph(cfg)
    assert sorted(n for j in jobs for n in j.nodes) == sorted(study_nodes(cfg))
    names = [j.name for j in jobs]
    for job in jobs:
        assert all(names.index(a) < names.index(job.name) for a in job.after)  # listed after what it waits for
        (r, level, branch), = job.nodes
        # main's level k and the branches of level k start once main's level k - 1 is trained; the
        # stability copy, which ends its linear path at main's trained level k, once level k is
        starts_from = level if branch == "stability" else level - 1
        assert job.after == ((f"r{r}-L{starts_from}-main",) if starts_from >= 0 else ()), job
    assert not any(a.startswith("r1") for j in jobs if j.name.startswith("r0") for a in j.after)  # replicates side by side



def test_status_says_done_running_started_or_missing(tmp_path, capsys) -> None:
    """``mirl status``: a node with done.json is done, one whose lock is held is running, one with
    files is started, else missing; a recorded job id is shown."""
    import json

    from mirl import paths
    from mirl.cli import main
    from mirl.study.config import non_default
    from mirl.fileio import atomic_write_json
    from mirl.study.launch import JOBS_FILE, node_states
    from mirl.runlock import RunLock

    cfg = study_preset("smoke", {"rounds": 1, "branches": "random_reinit"})
    study = tmp_path / "smoke_test"
    atomic_write_json(paths.run_config(study), {"non_default": non_default(cfg), "replicates": 1, "branches": ["random_reinit"]})
    replicate = paths.replicate_dir(study, 0)
    atomic_write_json(paths.done_file(paths.level_dir(replicate, 0)), {})
    atomic_write_json(paths.mask_file(paths.level_dir(replicate, 1, "random_reinit")), {})
    atomic_write_json(study / JOBS_FILE, {"r0-L1-main": {"job_id": "999999", "nodes": [[0, 1, "main"]], "after": ["r0-L0-main"]}})
    with RunLock(paths.level_dir(replicate, 1)):
        assert [row["state"] for row in node_states(study)] == ["done", "running", "started"]
        assert main(["status", str(study)]) == 0
    shown = capsys.readouterr().out
    assert "999999 (r0-L1-main)" in shown and "1 done, 1 running, 1 started of 3 nodes" in shown, shown
    assert [row["state"] for row in node_states(study)] == ["done", "missing", "started"]
    assert main(["status", str(tmp_path)]) == 2 and "is not a study folder" in capsys.readouterr().err
    json.loads((study / JOBS_FILE).read_text())  # untouched


def _tiny_study(tmp_path):
    """A study folder with only its config.json (smoke, 1 round, no branch): nodes (0, 0) and (0, 1)."""
    from mirl import paths
    from mirl.fileio import atomic_write_json
    from mirl.study.config import non_default

    study = tmp_path / "smoke_test"
    atomic_write_json(paths.run_config(study), {"non_default": non_default(study_preset("smoke", {"rounds": 1})),
                                                "replicates": 1, "branches": []})
    return study


@pytest.mark.parametrize("record", [
    ["r0-L0-main"],
    {"r0-L0-main": "123"},
    {"r0-L0-main": {"nodes": [[0, 0, "main"]]}},
    {"r0-L0-main": {"job_id": ["123"], "nodes": [[0, 0, "main"]]}},
    {"r0-L0-main": {"job_id": "123", "nodes": [0, 0, "main"]}},
    {"r0-L0-main": {"job_id": "123"}},
])
def test_a_damaged_jobs_json_is_named_in_one_line(tmp_path, capsys, record) -> None:
    import json

    from mirl.cli import main
    from mirl.study.launch import JOBS_FILE

    study = _tiny_study(tmp_path)
    (study / JOBS_FILE).write_text(json.dumps(record))
    assert main(["status", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mirl status: error: {study / JOBS_FILE} ") and err.count("\n") == 1 and "remove it" in err, err


def test_a_numeric_job_id_in_jobs_json_is_read_as_the_job(tmp_path, capsys) -> None:
    import json

    from mirl.study.launch import JOBS_FILE, node_states, submitted_jobs

    study = _tiny_study(tmp_path)
    (study / JOBS_FILE).write_text(json.dumps({"r0-L1-main": {"job_id": 999999, "nodes": [[0, 1, "main"]]}}))
    assert submitted_jobs(study)["r0-L1-main"]["job_id"] == "999999"
    assert [row["job_id"] for row in node_states(study)] == [None, "999999"]


def test_a_job_sbatch_refuses_is_one_line_and_what_was_submitted_is_recorded(tmp_path, monkeypatch) -> None:
    """sbatch accepts the first job and refuses the second (its real error): a MirlError naming the
    job and sbatch's reason, and jobs.json holds the first job."""
    import os

    from mirl.errors import MirlError
    from mirl.study.launch import SlurmOptions, StudySpec, submit_slurm, submitted_jobs

    study = _tiny_study(tmp_path)
    monkeypatch.setattr(StudySpec, "run", lambda self, nodes=(): study)
    tools = tmp_path / "bin"
    tools.mkdir()
    count = tmp_path / "count"
    scripts = {"sinfo": "echo debug",
               "sbatch": f'if [ -e {count} ]; then echo "sbatch: error: Batch job submission failed: Invalid partition name '
                         f'specified" >&2; exit 1; fi; touch {count}; echo "Submitted batch job 4242"',
               "sacct": "exit 0", "squeue": "exit 0"}
    for name, body in scripts.items():
        (tools / name).write_text(f"#!/bin/sh\n{body}\n")
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    cfg = study_preset("smoke", {"rounds": 1})
    with pytest.raises(MirlError, match=r"sbatch refused job r0-L1-main \(sbatch: error: Batch job submission failed: "
                                        r"Invalid partition name specified\)") as info:
        submit_slurm(StudySpec("smoke", {"rounds": 1}), job_graph(cfg), SlurmOptions(folder=str(tmp_path / "submitit")))
    assert "\n" not in str(info.value)
    assert submitted_jobs(study)["r0-L0-main"]["job_id"] == "4242" and "r0-L1-main" not in submitted_jobs(study)
