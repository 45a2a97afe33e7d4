"""The lottery engine on whole (smoke) studies: levels, re-runs, resets, controls, rewinding,
resume after kill -9, two processes under torchrun, shared dense levels, replicates."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mirl import paths
from mirl.config import ConfigError, study_preset
from mirl.lottery import run_study
from mirl.models import PromptIR, build_model, load_checkpoint
from mirl.pruning import apply_mask, load_mask, magnitude_prune, masks_equal, one_shot_fraction
from tests.conftest import FAST, subprocess_env

def test_smoke_study_levels(smoke_run):
    cfg = json.loads(paths.run_config(smoke_run).read_text())
    assert smoke_run.name.startswith("smoke_") and cfg["rounds"] == 2 and cfg["non_default"]["data"]
    previous = None
    for level in range(3):
        ldir = paths.level_dir(smoke_run, level)
        assert paths.done_file(ldir).exists()
        mask = load_mask(paths.mask_file(ldir))
        report = json.loads(paths.sparsity_file(ldir).read_text())
        assert report["prunable"]["density"] == pytest.approx(0.8**level, abs=1e-3)
        assert report["trainable"]["density"] > report["prunable"]["density"] or level == 0
        model, meta = load_checkpoint(paths.model_file(ldir))
        state = model.state_dict()
        assert all(torch.count_nonzero(state[n][~m]) == 0 for n, m in mask.items())
        if previous is not None:
            assert all(bool((mask[n] & ~previous[n]).sum() == 0) for n in mask), "a pruned weight came back"
        previous = mask
        metrics = json.loads(paths.metrics_file(ldir).read_text())
        assert metrics["convention"] == "upstream"
        assert set(metrics["tasks"]) == {"denoise_25", "derain"}
        assert all(v["psnr"] > 5 for v in metrics["tasks"].values())


def test_rerun_skips_finished_levels(smoke_run, demo_data):
    stamp = paths.model_file(paths.level_dir(smoke_run, 2)).stat().st_mtime_ns
    again = run_study("smoke", {"data": str(demo_data), **FAST}, out=smoke_run.parent)
    assert again == smoke_run and paths.model_file(paths.level_dir(smoke_run, 2)).stat().st_mtime_ns == stamp


def test_reset_to_theta0_keeps_prompts_trained(smoke_run):
    from mirl.config import study_preset as sp
    from mirl.lottery import starting_weights

    cfg = sp("smoke")
    theta0 = load_checkpoint(paths.init_weights(smoke_run))[0].state_dict()
    trained = load_checkpoint(paths.model_file(paths.level_dir(smoke_run, 0)))[0].state_dict()
    start = starting_weights(cfg, smoke_run, 1, theta0)
    assert torch.equal(start["patch_embed.proj.weight"], theta0["patch_embed.proj.weight"])
    assert torch.equal(start["encoder_level1.0.norm1.body.bias"], theta0["encoder_level1.0.norm1.body.bias"])
    assert torch.equal(start["prompt1.prompt_param"], trained["prompt1.prompt_param"])
    assert not torch.equal(start["prompt1.prompt_param"], theta0["prompt1.prompt_param"])
    cfg_all = sp("smoke", {"reset_params": "all"})
    assert torch.equal(starting_weights(cfg_all, smoke_run, 1, theta0)["prompt1.prompt_param"], theta0["prompt1.prompt_param"])


@pytest.mark.parametrize("control", ["random_prune", "random_reinit", "one_shot"])
def test_controls(control, demo_data, smoke_run, tmp_path):
    run = run_study("smoke", {"data": str(demo_data), "control": control, **FAST}, out=tmp_path)
    base_masks = [load_mask(paths.mask_file(paths.level_dir(smoke_run, k))) for k in range(3)]
    masks = [load_mask(paths.mask_file(paths.level_dir(run, k))) for k in range(3)]
    theta0 = load_checkpoint(paths.init_weights(run))[0].state_dict()
    assert torch.equal(theta0["output.weight"], load_checkpoint(paths.init_weights(smoke_run))[0].state_dict()["output.weight"])
    if control == "random_prune":
        level0 = load_checkpoint(paths.model_file(paths.level_dir(run, 1)))[0].state_dict()
        magnitude = magnitude_prune(load_checkpoint(paths.model_file(paths.level_dir(run, 0)))[0].state_dict(), None, 0.2)
        for n in masks[1]:
            assert int(masks[1][n].sum()) == int(magnitude[n].sum()), n
        assert not masks_equal(masks[1], magnitude)
        assert level0 is not None
    elif control == "random_reinit":
        trained0 = load_checkpoint(paths.model_file(paths.level_dir(run, 0)))[0].state_dict()
        assert masks_equal(masks[1], magnitude_prune(trained0, None, 0.2))
        from mirl.lottery import starting_weights

        start = starting_weights(study_preset("smoke", {"control": "random_reinit"}), run, 1, theta0)
        assert not torch.equal(start["output.weight"], theta0["output.weight"])
        assert float(start["output.weight"].std()) == pytest.approx(float(theta0["output.weight"].std()), rel=0.3)
    else:
        trained0 = load_checkpoint(paths.model_file(paths.level_dir(run, 0)))[0].state_dict()
        assert masks_equal(masks[2], magnitude_prune(trained0, None, one_shot_fraction(0.2, 2)))
    assert masks_equal(masks[0], base_masks[0])


def test_rewind_resets_to_weights_after_k_steps(demo_data, tmp_path):
    run = run_study("smoke", {"data": str(demo_data), "reset": "rewind", "rewind_steps": 2, "rounds": 1, **FAST}, out=tmp_path)
    rewound, meta = load_checkpoint(paths.rewind_weights(run))
    assert meta["metadata"]["theta"] == 2
    theta0 = load_checkpoint(paths.init_weights(run))[0].state_dict()
    assert not torch.equal(rewound.state_dict()["output.weight"], theta0["output.weight"])
    from mirl.lottery import starting_weights

    start = starting_weights(study_preset("smoke", {"reset": "rewind", "rewind_steps": 2, "rounds": 1}), run, 1, theta0)
    assert torch.equal(start["output.weight"], rewound.state_dict()["output.weight"])


def test_dense_level_is_shared_between_pruning_variants(smoke_run, demo_data):
    variant = run_study("smoke", {"data": str(demo_data), "control": "random_reinit", "rounds": 1, **FAST}, out=smoke_run.parent)
    assert variant != smoke_run
    reused = json.loads(paths.reused_file(paths.level_dir(variant, 0)).read_text())
    assert reused["source"] == smoke_run.name
    assert paths.model_file(paths.level_dir(variant, 0)).read_bytes() == paths.model_file(paths.level_dir(smoke_run, 0)).read_bytes()
    assert paths.done_file(paths.level_dir(variant, 1)).exists()
    other_seed = run_study("smoke", {"data": str(demo_data), "seed": 1, "rounds": 0, **FAST}, out=smoke_run.parent)
    assert not paths.reused_file(paths.level_dir(other_seed, 0)).exists()


def test_layer_collapse_is_reported_and_warned():
    from mirl.lottery import warn_collapse
    from mirl.pruning.mask import sparsity_report

    state = build_model("tiny").state_dict()
    mask = magnitude_prune(state, None, 0.2)
    mask["output.weight"][:] = False
    mask["chnl_reduce1.weight"][:] = False  # never used in forward: not a collapse
    report = sparsity_report(mask, state, PromptIR.unused_in_forward)  # the network declares what it never calls
    assert report["empty_tensors"] == ["output.weight"]
    assert sparsity_report(mask, state)["empty_tensors"] == ["chnl_reduce1.weight", "output.weight"]
    with pytest.warns(UserWarning, match="output.weight is empty: the network now returns its input"):
        warn_collapse(3, report["empty_tensors"], study_preset("smoke"))
    model = build_model("tiny").eval()
    model.load_state_dict(state)
    apply_mask(model, mask)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), x)  # the global residual is all that is left


def test_compile_setting_compiles_blocks_for_training_only(monkeypatch, tmp_path, demo_data):
    """``compile=regional`` routes every training forward of each block through its compiled
    call, and evaluation (images of many sizes) through the eager one."""
    from mirl.models.promptir import TransformerBlock

    modes: list[bool] = []

    def fake_compile(self: TransformerBlock, *args: object, **kwargs: object) -> None:
        def compiled_call(*a: object, **k: object) -> torch.Tensor:
            modes.append(torch.is_grad_enabled())
            return self._call_impl(*a, **k)

        self._compiled_call_impl = compiled_call

    monkeypatch.setattr(TransformerBlock, "compile", fake_compile)
    run_study("smoke", {"data": str(demo_data), "compile": "regional", "rounds": 1, **FAST}, out=tmp_path)
    assert modes and all(modes), "compiled blocks must run in training, never in evaluation"


def _lottery_cmd(out: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mirl", "lottery", "--preset", "smoke", "--out", str(out), "--no-progress",
            "--set", f"data={data}", "epochs=3", "steps_per_epoch=4", "checkpoint_every=1", *extra]


def test_rerun_removes_what_a_killed_atomic_write_left(smoke_run, demo_data, tmp_path):
    """SIGKILL inside an atomic write leaves its temporary beside the result; the next run of
    the study removes it (and keeps every result file)."""
    run = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, run)
    stale = paths.level_dir(run, 1) / ".train_log.csv.k1ll3d.tmp"
    stale.write_text("step,loss\n1,")
    before = sorted(p.relative_to(run) for p in run.rglob("*") if p != stale)
    run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
    assert not stale.exists()
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_masks(demo_data, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_lottery_cmd(reference, demo_data), check=True, env=subprocess_env(), capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_lottery_cmd(killed, demo_data), env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    target = None
    while time.time() < deadline and proc.poll() is None:
        states = [s for r in killed.glob("*") if (s := paths.train_state_file(paths.level_dir(r, 1))).exists()]
        if states:
            target = states[0]
            break
        time.sleep(0.01)
    assert target is not None, f"the run ended before level 1 checkpointed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = target.parent.parent
    assert not paths.done_file(paths.level_dir(run, 1)).exists()
    subprocess.run(_lottery_cmd(killed, demo_data), check=True, env=subprocess_env(), capture_output=True)
    metrics = json.loads(paths.metrics_file(paths.level_dir(run, 1)).read_text())
    assert metrics["train"]["resumed_from"] > 0
    ref_run = reference / run.name
    for level in range(3):
        a = load_mask(paths.mask_file(paths.level_dir(run, level)))
        b = load_mask(paths.mask_file(paths.level_dir(ref_run, level)))
        assert masks_equal(a, b), f"level {level} mask differs after resume"
    assert not list(run.rglob("*.tmp"))


@pytest.mark.slow
def test_two_processes_with_torchrun(demo_data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mirl", "lottery", "--preset", "smoke", "--out", str(tmp_path), "--no-progress",
           "--set", f"data={demo_data}", "rounds=1"]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next(tmp_path.glob("smoke_*"))
    for level in (0, 1):
        assert paths.done_file(paths.level_dir(run, level)).exists()
    trained = load_checkpoint(paths.model_file(paths.level_dir(run, 1)))[0].state_dict()
    mask = load_mask(paths.mask_file(paths.level_dir(run, 1)))
    assert all(torch.count_nonzero(trained[n][~m]) == 0 for n, m in mask.items())


def test_a_run_that_cannot_start_leaves_no_folder(demo_data, tmp_path):
    """Bad settings, a missing or empty data folder: an error, and no (empty) run folder."""
    from mirl.errors import MirlError

    out = tmp_path / "runs"
    with pytest.raises(ConfigError):
        run_study("smoke", {"rounds": "many", **FAST}, out=out)
    with pytest.raises(MirlError, match="does not exist"):
        run_study("smoke", {"data": str(tmp_path / "missing"), **FAST}, out=out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MirlError, match="folder not found"):
        run_study("smoke", {"data": str(tmp_path / "empty"), **FAST}, out=out)
    assert not out.exists(), sorted(out.rglob("*"))


def test_replicates_are_runs_of_their_own_reused_and_resumed_one_by_one(smoke_run, demo_data, tmp_path, capsys):
    from mirl.cli import main
    from mirl.lottery import run_replicates

    shutil.copytree(smoke_run, tmp_path / smoke_run.name)  # seed 0, finished: replicate 0 is reused as it is
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / smoke_run.name).rglob("*")}
    runs = run_replicates("smoke", {"data": str(demo_data), "replicates": 2, **FAST}, out=tmp_path)
    assert runs[0] == tmp_path / smoke_run.name and runs[1] != runs[0]
    assert [json.loads(paths.run_config(r).read_text())["seed"] for r in runs] == [0, 1]
    assert all(paths.done_file(paths.level_dir(r, 2)).is_file() for r in runs)
    assert {p: p.stat().st_mtime_ns for p in runs[0].rglob("*")} == first
    # an interrupted replicate resumes alone
    paths.done_file(paths.level_dir(runs[1], 2)).unlink()
    kept = [*runs[0].rglob("*"), *paths.level_dir(runs[1], 0).rglob("*"), *paths.level_dir(runs[1], 1).rglob("*")]
    others = {p: p.stat().st_mtime_ns for p in kept}  # replicate 0 and replicate 1's finished levels
    args = ["lottery", "--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--set", f"data={demo_data}", "replicates=2"]
    assert main(args) == 0
    assert paths.done_file(paths.level_dir(runs[1], 2)).is_file()
    assert {p: p.stat().st_mtime_ns for p in others} == others
    out = capsys.readouterr().out
    assert "95% t-interval across 2 replicates" in out and "x 2 rep" in out
    assert out.count("run: ") == 2
