"""``mirl lottery`` (mirl.commands.lottery): launcher option checks, the ``--seed``/``--device``
shorthands, the dry run's job-graph line, and the summary printed after a study."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mirl import paths
from mirl.cli import main
from mirl.study.config import study_preset
from mirl.study.lottery import study_nodes


@pytest.fixture()
def nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project home; starting a study fails the test. Returns the --out folder to pass."""
    import mirl.study.lottery

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused command started the study")

    monkeypatch.setenv("MIRL_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(mirl.study.lottery, "run_study", refuse)
    return tmp_path / "runs"


@pytest.mark.parametrize("extra, message", [
    (["--partition", "gpu"], "--partition is for --launcher slurm, not --launcher auto; add --launcher slurm or leave it out"),
    (["--launcher", "local", "--account", "lab", "--wait"],
     "--account, --wait are for --launcher slurm, not --launcher local; add --launcher slurm or leave them out"),
    (["--time", "30"], "--time is for --launcher slurm, not --launcher auto"),
    (["--sbatch", "qos=high"], "--sbatch is for --launcher slurm"),
    (["--launcher", "local", "--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--launcher", "slurm", "--gpus-per-job", "-1"], "--gpus-per-job must be 0 (CPU jobs) or more, got -1"),
    (["--launcher", "slurm", "--cpus-per-job", "0"], "--cpus-per-job must be at least 1, got 0"),
    (["--launcher", "slurm", "--time", "0"], "--time is a job's limit in minutes and must be at least 1, got 0"),
])
def test_launcher_options_that_do_not_fit_are_one_line(extra: list[str], message: str, nothing_runs: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    assert main(["lottery", "--preset", "smoke", "--out", str(nothing_runs), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl lottery: error: ") and err.count("\n") == 1 and message in err, err
    assert not nothing_runs.exists()


def test_seed_and_device_shorthands_set_the_settings(nothing_runs: Path, capsys: pytest.CaptureFixture) -> None:
    """``--seed 7 --device cpu`` is ``--set seed=7 device=cpu``; they win over an earlier ``--set``."""
    assert main(["lottery", "--preset", "smoke", "--set", "seed=3", "--seed", "7", "--device", "cpu", "--list-settings"]) == 0
    settings = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert settings["seed"] == "7" and settings["device"] == "'cpu'"
    assert main(["lottery", "--preset", "smoke", "--list-settings"]) == 0
    default = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert default["seed"] == repr(study_preset("smoke").seed)


def test_dry_run_names_the_local_launcher_and_its_processes(nothing_runs: Path, capsys: pytest.CaptureFixture) -> None:
    sets = ["replicates=2", "rounds=1", "branches=random_reinit"]
    assert main(["lottery", "--preset", "smoke", "--set", *sets, "--out", str(nothing_runs), "--dry-run", "--no-timing",
                 "--launcher", "local", "--jobs", "3"]) == 0
    nodes = len(study_nodes(study_preset("smoke", {"replicates": 2, "rounds": 1, "branches": "random_reinit"})))
    out = capsys.readouterr().out
    assert f"launcher local: {nodes} of {nodes} jobs to run in 3 process(es) here" in out, out
    assert not nothing_runs.exists()


def test_dry_run_refuses_what_the_run_would_refuse(nothing_runs: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["lottery", "--preset", "smoke", "--out", str(nothing_runs), "--dry-run", "--no-timing",
                 "--launcher", "local", "--jobs", "0"]) == 2
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--sbatch", "qos=high\necho X"], "--sbatch 'qos=high\\necho X' holds a line break"),
    (["--sbatch", "qos"], "--sbatch 'qos' is not KEY=VALUE"),
    (["--sbatch", "=high"], "--sbatch '=high' is not KEY=VALUE"),
    (["--sbatch", "qos=high", "qos=low"], "--sbatch qos is given twice"),
    (["--partition", "debug\n#SBATCH --time=1"], "--partition 'debug\\n#SBATCH --time=1' holds a line break"),
    (["--account", "lab\recho"], "--account 'lab\\recho' holds a line break"),
])
@pytest.mark.parametrize("dry", [True, False])
def test_what_goes_into_the_batch_script_is_checked_first(extra: list[str], message: str, dry: bool, nothing_runs: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """Each sbatch option is one ``#SBATCH`` line: a line break would put a shell line into the script,
    after which sbatch ignores every later directive (the requeue signal, --time). Refused, dry run too."""
    assert main(["lottery", "--preset", "smoke", "--out", str(nothing_runs), "--launcher", "slurm", *extra,
                 *(["--dry-run", "--no-timing"] if dry else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl lottery: error: ") and err.count("\n") == 1 and message in err, err
    assert not nothing_runs.exists()


def test_summary_rows_are_the_levels_scores(smoke_run: Path, capsys: pytest.CaptureFixture) -> None:
    """One row per level with its densities, mean PSNR, input PSNR and gain as in its metrics.json,
    and a warning for each task where the network scores below its input."""
    from mirl.commands.lottery import print_summary

    print_summary(smoke_run)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ticket:" and "metric convention: upstream" in lines[1]
    replicate = paths.replicate_dir(smoke_run, 0)
    levels = sorted(int(p.name.split("_")[1]) for p in replicate.glob("level_*"))
    rows = [line for line in lines[2:] if re.match(r"\s*\d+\s", line)]
    assert [int(r.split()[0]) for r in rows] == levels
    harmed = []
    for level, row in zip(levels, rows):
        m = json.loads(paths.metrics_file(paths.level_dir(replicate, level)).read_text())
        tasks = m["tasks"].values()
        images = sum(t["images"] for t in tasks)
        mean_in = sum(t["input_psnr"] for t in tasks) / len(tasks)
        cells = row.split()
        assert cells[1] == f"{100 * m['density_prunable']:.2f}%" and cells[2] == f"{100 * m['density_trainable']:.2f}%"
        assert float(cells[3]) == pytest.approx(m["mean_psnr"], abs=0.006)
        assert float(cells[4]) == pytest.approx(mean_in, abs=0.006)
        assert float(cells[5]) == pytest.approx(m["mean_psnr"] - mean_in, abs=0.006)
        assert row.endswith(f"{images} img x 1 rep")
        harmed += [(level, name) for name, t in m["tasks"].items() if t["psnr"] < t["input_psnr"]]
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == len(harmed)
    for (level, task), line in zip(harmed, warnings):
        assert f"level {level} (" in line and f"{task}: the restored images score" in line


@pytest.mark.parametrize("replicates, verdict", [(3, "resolved"), (1, "too few to tell")])
def test_summary_prints_one_primary_endpoint_per_control_with_its_df_and_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                              capsys: pytest.CaptureFixture, replicates: int,
                                                                              verdict: str) -> None:
    """Issue 31: after the curves, each control's primary endpoint on one line: interval, df, seeds, verdict."""
    import pandas as pd

    from mirl.analysis import evidence
    from mirl.commands.lottery import print_summary
    from tests.analysis.test_evidence import study

    variants = study(tmp_path, 1.0, replicates=replicates)
    monkeypatch.setattr(evidence, "study_variants", lambda _: variants)
    monkeypatch.setattr(evidence, "barrier_table", lambda _: pd.DataFrame())
    print_summary(tmp_path)
    lines = capsys.readouterr().out.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("primary endpoint of each control")]
    assert len(header) == 1
    line = lines[header[0] + 1]
    expected = evidence.primary_endpoints(evidence.scores_table(variants), "ticket").iloc[0]
    assert line == f"  {expected['sentence']}" and line.endswith(f": {verdict}")
    assert line.startswith("  ticket - random re-init, mean over pruned levels 1, 2: +1.0")
    assert (", df = 2, n = 3 seeds (each the mean over 2 pruned levels x 32 test images)" in line) == (replicates == 3)
    assert (" dB, no interval (1 seed), n = 1 seed (the mean over 2 pruned levels x 32 test images)" in line) == (replicates == 1)
    assert ("[" in line) == (replicates == 3)  # one seed: no bracket that reads as an interval across seeds


def _fake_tools(folder: Path, **scripts: str) -> str:
    """A PATH with these shell scripts (name -> body) first."""
    import os

    folder.mkdir(exist_ok=True)
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_slurm_without_a_reachable_controller_is_refused_before_anything_is_made(nothing_runs: Path, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                                 capsys: pytest.CaptureFixture) -> None:
    """sinfo fails as Slurm 22.05 does when slurmctld is down: one line, no study folder, no submitit folder
    (it was submitit's FailedJobError traceback after the study folder was made)."""
    down = "echo 'slurm_load_partitions: Unable to contact slurm controller (connect failure)' >&2; exit 1"
    monkeypatch.setenv("PATH", _fake_tools(tmp_path / "bin", sinfo=down, sbatch="echo 'sbatch: error: Batch job submission failed: "
                                                                                "Unable to contact slurm controller (connect failure)' >&2; exit 1"))
    assert main(["lottery", "--preset", "smoke", "--out", str(nothing_runs), "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirl lottery: error: SLURM's controller cannot be reached (sinfo: slurm_load_partitions: Unable to "
                          "contact slurm controller (connect failure))") and err.count("\n") == 1, err
    assert not nothing_runs.exists()


def test_slurm_without_its_tools_is_refused_in_one_line(nothing_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["lottery", "--preset", "smoke", "--out", str(nothing_runs), "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "--launcher slurm needs SLURM's sbatch, sinfo on PATH" in err and err.count("\n") == 1, err
    assert not nothing_runs.exists()
