"""The lottery engine: schedule, run names, overrides, masked training, levels and controls,
resume after kill -9, two processes under torchrun, sparse export."""

from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mirl.config import ConfigError, config_hash, study_preset
from mirl.lottery import run_study
from mirl.models import build_model, load_checkpoint
from mirl.pruning.controls import one_shot_fraction
from mirl.pruning.magnitude import magnitude_prune
from mirl.pruning.mask import apply_mask, load_mask, masks_equal
from mirl.train import TrainingDiverged, lr_at_epoch, train_level
from tests.conftest import REPO

FAST = {"progress": False}


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from mirl.data.make_dataset import make_dataset

    root = tmp_path_factory.mktemp("data") / "builtin"
    make_dataset(root, seed=0, max_test_side=64, progress=False)
    return root


@pytest.fixture(scope="session")
def smoke_run(demo_data, tmp_path_factory) -> Path:
    return run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path_factory.mktemp("runs"))


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


# --- configuration ---------------------------------------------------------------------------

def test_schedule_matches_published_values():
    published = {0: 0.0, 1: 1.43e-5, 7: 1.00e-4, 14: 2.00e-4, 15: 2.00e-4, 30: 1.90e-4,
                 60: 1.22e-4, 90: 3.77e-5, 110: 4.44e-6, 119: 4.5e-8}
    for epoch, value in published.items():
        got = lr_at_epoch(epoch, 2e-4, 15, 120)
        assert got == pytest.approx(value, rel=0.01, abs=1e-12), epoch


def test_run_hash_is_pinned():
    # A refactor must not silently rename existing runs: this literal is the smoke preset's hash.
    assert config_hash(study_preset("smoke")) == "49d0c140"
    assert config_hash(study_preset("smoke", {"device": "cpu", "progress": False})) == "49d0c140"
    assert config_hash(study_preset("smoke", {"rounds": 3})) != "49d0c140"


def test_overrides_are_validated():
    with pytest.raises(ConfigError, match="valid settings: .*rounds"):
        study_preset("smoke", {"roundz": 3})
    with pytest.raises(ConfigError, match="valid: global, layerwise"):
        study_preset("smoke", {"scope": "channel"})
    with pytest.raises(ConfigError, match="expected int"):
        study_preset("smoke", {"rounds": "many"})
    with pytest.raises(Exception, match="unknown task"):
        study_preset("smoke", {"tasks": "denoise_25,deblur"})
    assert study_preset("smoke", {"tasks": "derain,jpeg"}).tasks == ("derain", "jpeg")


def test_cli_rejects_unknown_setting(capsys):
    from mirl.cli import main

    assert main(["lottery", "--preset", "smoke", "--set", "colour=red"]) == 2
    assert "valid settings" in capsys.readouterr().err


# --- training ---------------------------------------------------------------------------------

class _Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int = 8, poison: bool = False) -> None:
        gen = torch.Generator().manual_seed(0)
        self.clean = torch.rand(n, 3, 32, 32, generator=gen)
        self.noisy = (self.clean + 0.1 * torch.randn(n, 3, 32, 32, generator=gen)).clamp(0, 1)
        if poison:
            self.noisy[:] = float("nan")

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int):
        return self.noisy[i], self.clean[i], 0


def test_pruned_weights_stay_exactly_zero(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = magnitude_prune(model.state_dict(), None, 0.5)
    apply_mask(model, mask)
    cfg = study_preset("smoke", {"epochs": 2, "steps_per_epoch": 3, **FAST})
    train_level(model, mask, _Pairs(), cfg, tmp_path, torch.device("cpu"))
    state = model.state_dict()
    for name, keep in mask.items():
        assert torch.count_nonzero(state[name][~keep]) == 0, name
    changed = [n for n in mask if not torch.equal(state[n][mask[n]], before[n][mask[n]])]
    assert len(changed) > len(mask) // 2, "training did not update the surviving weights"
    log = (tmp_path / "train_log.csv").read_text().splitlines()
    assert log[0] == "step,epoch,loss,lr,images_per_s,seconds" and len(log) == 7


def test_deferred_loss_check_never_saves_a_diverged_state(tmp_path, monkeypatch):
    """The CUDA path reads the loss every 10 steps; a NaN must still stop the run before any
    checkpoint holds the diverged weights. Exercised on the CPU by forcing the interval."""
    import mirl.train as train_module

    monkeypatch.setattr(train_module, "sync_interval", lambda device: 10)
    cfg = study_preset("smoke", {"checkpoint_every": 4, "epochs": 4, **FAST})
    model = build_model("tiny")
    with pytest.raises(TrainingDiverged, match="loss became nan at level 0, epoch 0, step 1"):
        train_level(model, {}, _Pairs(poison=True), cfg, tmp_path, torch.device("cpu"))
    assert not (tmp_path / "train_state.pt").exists(), "a diverged state was checkpointed"


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(tmp_path):
    model = build_model("tiny")
    cfg = study_preset("smoke", {"checkpoint_every": 1, **FAST})
    with pytest.raises(TrainingDiverged, match="loss became nan.*last good checkpoint"):
        train_level(model, {}, _Pairs(poison=True), cfg, tmp_path, torch.device("cpu"))
    assert not list(tmp_path.glob("*.tmp"))


# --- a whole study ----------------------------------------------------------------------------

def test_smoke_study_levels(smoke_run):
    cfg = json.loads((smoke_run / "config.json").read_text())
    assert smoke_run.name.startswith("smoke_") and cfg["rounds"] == 2 and cfg["non_default"]["data"]
    previous = None
    for level in range(3):
        ldir = smoke_run / f"level_{level}"
        assert (ldir / "done.json").exists()
        mask = load_mask(ldir / "mask.pt")
        report = json.loads((ldir / "sparsity_report.json").read_text())
        assert report["prunable"]["density"] == pytest.approx(0.8**level, abs=1e-3)
        assert report["trainable"]["density"] > report["prunable"]["density"] or level == 0
        model, meta = load_checkpoint(ldir / "model.pt")
        state = model.state_dict()
        assert all(torch.count_nonzero(state[n][~m]) == 0 for n, m in mask.items())
        if previous is not None:
            assert all(bool((mask[n] & ~previous[n]).sum() == 0) for n in mask), "a pruned weight came back"
        previous = mask
        metrics = json.loads((ldir / "metrics.json").read_text())
        assert metrics["convention"] == "upstream"
        assert set(metrics["tasks"]) == {"denoise_25", "derain"}
        assert all(v["psnr"] > 5 for v in metrics["tasks"].values())


def test_rerun_skips_finished_levels(smoke_run, demo_data):
    stamp = (smoke_run / "level_2" / "model.pt").stat().st_mtime_ns
    again = run_study("smoke", {"data": str(demo_data), **FAST}, out=smoke_run.parent)
    assert again == smoke_run and (smoke_run / "level_2" / "model.pt").stat().st_mtime_ns == stamp


def test_reset_to_theta0_keeps_prompts_trained(smoke_run):
    from mirl.config import study_preset as sp
    from mirl.lottery import starting_weights

    cfg = sp("smoke")
    theta0 = load_checkpoint(smoke_run / "init.pt")[0].state_dict()
    trained = load_checkpoint(smoke_run / "level_0" / "model.pt")[0].state_dict()
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
    base_masks = [load_mask(smoke_run / f"level_{k}" / "mask.pt") for k in range(3)]
    masks = [load_mask(run / f"level_{k}" / "mask.pt") for k in range(3)]
    theta0 = load_checkpoint(run / "init.pt")[0].state_dict()
    assert torch.equal(theta0["output.weight"], load_checkpoint(smoke_run / "init.pt")[0].state_dict()["output.weight"])
    if control == "random_prune":
        level0 = load_checkpoint(run / "level_1" / "model.pt")[0].state_dict()
        magnitude = magnitude_prune(load_checkpoint(run / "level_0" / "model.pt")[0].state_dict(), None, 0.2)
        for n in masks[1]:
            assert int(masks[1][n].sum()) == int(magnitude[n].sum()), n
        assert not masks_equal(masks[1], magnitude)
        assert level0 is not None
    elif control == "random_reinit":
        trained0 = load_checkpoint(run / "level_0" / "model.pt")[0].state_dict()
        assert masks_equal(masks[1], magnitude_prune(trained0, None, 0.2))
        from mirl.lottery import starting_weights

        start = starting_weights(study_preset("smoke", {"control": "random_reinit"}), run, 1, theta0)
        assert not torch.equal(start["output.weight"], theta0["output.weight"])
        assert float(start["output.weight"].std()) == pytest.approx(float(theta0["output.weight"].std()), rel=0.3)
    else:
        trained0 = load_checkpoint(run / "level_0" / "model.pt")[0].state_dict()
        assert masks_equal(masks[2], magnitude_prune(trained0, None, one_shot_fraction(0.2, 2)))
    assert masks_equal(masks[0], base_masks[0])


def test_rewind_resets_to_weights_after_k_steps(demo_data, tmp_path):
    run = run_study("smoke", {"data": str(demo_data), "reset": "rewind", "rewind_steps": 2, "rounds": 1, **FAST}, out=tmp_path)
    rewound, meta = load_checkpoint(run / "rewind.pt")
    assert meta["metadata"]["theta"] == 2
    theta0 = load_checkpoint(run / "init.pt")[0].state_dict()
    assert not torch.equal(rewound.state_dict()["output.weight"], theta0["output.weight"])
    from mirl.lottery import starting_weights

    start = starting_weights(study_preset("smoke", {"reset": "rewind", "rewind_steps": 2, "rounds": 1}), run, 1, theta0)
    assert torch.equal(start["output.weight"], rewound.state_dict()["output.weight"])


# --- robustness ---------------------------------------------------------------------------------

def _lottery_cmd(out: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mirl", "lottery", "--preset", "smoke", "--out", str(out), "--no-progress",
            "--set", f"data={data}", "epochs=3", "steps_per_epoch=4", "checkpoint_every=1", *extra]


def test_rerun_removes_what_a_killed_atomic_write_left(smoke_run, demo_data, tmp_path):
    """SIGKILL inside an atomic write leaves its temporary beside the result; the next run of
    the study removes it (and keeps every result file)."""
    run = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, run)
    stale = run / "level_1" / ".train_log.csv.k1ll3d.tmp"
    stale.write_text("step,loss\n1,")
    before = sorted(p.relative_to(run) for p in run.rglob("*") if p != stale)
    run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
    assert not stale.exists()
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_masks(demo_data, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_lottery_cmd(reference, demo_data), check=True, env=_env(), capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_lottery_cmd(killed, demo_data), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    target = None
    while time.time() < deadline and proc.poll() is None:
        states = list(killed.glob("*/level_1/train_state.pt"))
        if states:
            target = states[0]
            break
        time.sleep(0.01)
    assert target is not None, f"the run ended before level 1 checkpointed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = target.parent.parent
    assert not (run / "level_1" / "done.json").exists()
    subprocess.run(_lottery_cmd(killed, demo_data), check=True, env=_env(), capture_output=True)
    metrics = json.loads((run / "level_1" / "metrics.json").read_text())
    assert metrics["train"]["resumed_from"] > 0
    ref_run = reference / run.name
    for level in range(3):
        a = load_mask(run / f"level_{level}" / "mask.pt")
        b = load_mask(ref_run / f"level_{level}" / "mask.pt")
        assert masks_equal(a, b), f"level {level} mask differs after resume"
    assert not list(run.rglob("*.tmp"))


@pytest.mark.slow
def test_two_processes_with_torchrun(demo_data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mirl", "lottery", "--preset", "smoke", "--out", str(tmp_path), "--no-progress",
           "--set", f"data={demo_data}", "rounds=1"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next(tmp_path.glob("smoke_*"))
    for level in (0, 1):
        assert (run / f"level_{level}" / "done.json").exists()
    trained = load_checkpoint(run / "level_1" / "model.pt")[0].state_dict()
    mask = load_mask(run / "level_1" / "mask.pt")
    assert all(torch.count_nonzero(trained[n][~m]) == 0 for n, m in mask.items())


def test_sparse_export_round_trip(smoke_run, tmp_path):
    from mirl.cli import main

    level = smoke_run / "level_2"
    out = tmp_path / "level2.sparse.pt"
    assert main(["export", str(level), "--out", str(out)]) == 0
    dense_model, _ = load_checkpoint(level / "model.pt")
    sparse_model, meta = load_checkpoint(out)
    assert meta["format"] == "mirl.sparse" and meta["preset"] == "tiny"
    assert masks_equal(meta["mask"], load_mask(level / "mask.pt"))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(sparse_model.eval()(x), dense_model.eval()(x))
    half = tmp_path / "half.pt"
    assert main(["export", str(level), "--out", str(half), "--dtype", "float16"]) == 0
    assert half.stat().st_size < out.stat().st_size < (level / "model.pt").stat().st_size


def test_sparse_export_size_at_ten_percent_density(tmp_path):
    """At 10% density over all trainable parameters (paper size) the file is <= ~15% of dense."""
    from mirl.models import save_checkpoint
    from mirl.pruning.rules import density_summary
    from mirl.pruning.sparse import export_sparse

    torch.manual_seed(0)
    model = build_model("paper")
    mask = magnitude_prune(model.state_dict(), None, one_shot_fraction(0.2, 15))
    apply_mask(model, mask)
    summary = density_summary(model.state_dict())
    assert summary["density_trainable"] == pytest.approx(0.10, abs=0.005)
    save_checkpoint(tmp_path / "dense.pt", model)
    size = export_sparse(tmp_path / "sparse.pt", model.state_dict(), mask, model.config.to_dict())
    ratio = size / (tmp_path / "dense.pt").stat().st_size
    assert ratio <= 0.15, f"sparse export is {ratio:.1%} of the dense checkpoint"


def test_dense_level_is_shared_between_pruning_variants(smoke_run, demo_data):
    variant = run_study("smoke", {"data": str(demo_data), "control": "random_reinit", "rounds": 1, **FAST}, out=smoke_run.parent)
    assert variant != smoke_run
    reused = json.loads((variant / "level_0" / "reused.json").read_text())
    assert reused["source"] == smoke_run.name
    assert (variant / "level_0" / "model.pt").read_bytes() == (smoke_run / "level_0" / "model.pt").read_bytes()
    assert (variant / "level_1" / "done.json").exists()
    other_seed = run_study("smoke", {"data": str(demo_data), "seed": 1, "rounds": 0, **FAST}, out=smoke_run.parent)
    assert not (other_seed / "level_0" / "reused.json").exists()


def test_layer_collapse_is_reported_and_warned():
    from mirl.lottery import warn_collapse
    from mirl.pruning.mask import sparsity_report

    state = build_model("tiny").state_dict()
    mask = magnitude_prune(state, None, 0.2)
    mask["output.weight"][:] = False
    mask["chnl_reduce1.weight"][:] = False  # never used in forward: not a collapse
    report = sparsity_report(mask, state)
    assert report["empty_tensors"] == ["output.weight"]
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


# --- one writer per run folder; reading a finished run writes nothing ---------------------------

def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (folders too) with its modification time and size."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in [root, *root.rglob("*")]}


def _set_writable(root: Path, writable: bool) -> bool:
    """chmod ``root`` recursively; False when that does not stop writes (root ignores modes)."""
    for p in [root, *root.rglob("*")]:
        p.chmod((0o755 if p.is_dir() else 0o644) if writable else (0o555 if p.is_dir() else 0o444))
    if writable:
        return True
    probe = root / ".probe"
    try:
        probe.write_text("")
    except PermissionError:
        return True
    probe.unlink()
    return False


def _unfinished_copy(smoke_run: Path, tmp_path: Path) -> Path:
    """A copy of the smoke run whose last level is not done (its mask is kept: a resume)."""
    run = tmp_path / "runs" / smoke_run.name
    shutil.copytree(smoke_run, run)
    for name in ("done.json", "metrics.json", "model.pt"):
        (run / "level_2" / name).unlink()
    return run


def test_reading_a_finished_run_writes_nothing(smoke_run, demo_data, tmp_path):
    """A finished run in a read-only folder can be read (reports do this); nothing is written,
    also when a setting that is not part of the run's identity (device) differs."""
    run = tmp_path / "ro" / smoke_run.name
    shutil.copytree(smoke_run, run)
    stale = run / "level_1" / ".metrics.json.k1ll3d.tmp"  # left by a killed write: harmless here
    stale.write_text("{")
    if not _set_writable(run.parent, False):  # running as root: the folder stays writable, so
        stale.unlink()                        # the stale file would be tidied away (that is fine)
    before = _snapshot(run.parent)
    try:
        for settings in ({}, {"device": "cpu"}):
            assert run_study("smoke", {"data": str(demo_data), **FAST, **settings}, out=run.parent) == run
            assert _snapshot(run.parent) == before
    finally:
        _set_writable(run.parent, True)


def test_unfinished_run_in_read_only_folder_says_what_to_do(smoke_run, demo_data, tmp_path, monkeypatch):
    from mirl.errors import MirlError
    import mirl.runlock as runlock

    run = _unfinished_copy(smoke_run, tmp_path)
    if not _set_writable(run.parent, False):  # running as root: simulate the read-only folder
        def refuse(path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(runlock, "_open_lock_file", refuse)
    before = _snapshot(run.parent)
    try:
        with pytest.raises(MirlError, match=rf"{run} is read-only.*copy it somewhere writable"):
            run_study("smoke", {"data": str(demo_data), **FAST}, out=run.parent)
        assert _snapshot(run.parent) == before
    finally:
        _set_writable(run.parent, True)


_HOLD_LOCK = "import sys, time; from mirl.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(300)"


def test_second_writer_refuses_while_the_run_is_locked(smoke_run, demo_data, tmp_path):
    """Two commands on one run folder: the second refuses (naming the folder and the holder);
    after the holder dies (kill -9 included) the run goes on."""
    import socket

    from mirl.errors import MirlError

    run = _unfinished_copy(smoke_run, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(run.parent)
        with pytest.raises(MirlError, match=rf"{run} is in use by another mirl process \(pid {holder.pid} on {socket.gethostname()}"):
            run_study("smoke", {"data": str(demo_data), **FAST}, out=run.parent)
        assert _snapshot(run.parent) == before
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert run_study("smoke", {"data": str(demo_data), **FAST}, out=run.parent) == run
    assert (run / "level_2" / "done.json").exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [], "the lock file stayed behind"


def test_finished_run_is_readable_while_locked(smoke_run, demo_data):
    from mirl.runlock import RunLock

    with RunLock(smoke_run):
        assert run_study("smoke", {"data": str(demo_data), **FAST}, out=smoke_run.parent) == smoke_run


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


# --- replicates -------------------------------------------------------------------------------

def test_replicates_are_runs_of_their_own_reused_and_resumed_one_by_one(smoke_run, demo_data, tmp_path, capsys):
    from mirl.cli import main
    from mirl.lottery import run_replicates

    shutil.copytree(smoke_run, tmp_path / smoke_run.name)  # seed 0, finished: replicate 0 is reused as it is
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / smoke_run.name).rglob("*")}
    runs = run_replicates("smoke", {"data": str(demo_data), "replicates": 2, **FAST}, out=tmp_path)
    assert runs[0] == tmp_path / smoke_run.name and runs[1] != runs[0]
    assert [json.loads((r / "config.json").read_text())["seed"] for r in runs] == [0, 1]
    assert all((r / "level_2" / "done.json").is_file() for r in runs)
    assert {p: p.stat().st_mtime_ns for p in runs[0].rglob("*")} == first
    # an interrupted replicate resumes alone
    (runs[1] / "level_2" / "done.json").unlink()
    kept = [*runs[0].rglob("*"), *(runs[1] / "level_0").rglob("*"), *(runs[1] / "level_1").rglob("*")]
    others = {p: p.stat().st_mtime_ns for p in kept}  # replicate 0 and replicate 1's finished levels
    args = ["lottery", "--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--set", f"data={demo_data}", "replicates=2"]
    assert main(args) == 0
    assert (runs[1] / "level_2" / "done.json").is_file()
    assert {p: p.stat().st_mtime_ns for p in others} == others
    out = capsys.readouterr().out
    assert "95% t-interval across 2 replicates" in out and "x 2 rep" in out
    assert out.count("run: ") == 2


def test_replicates_do_not_change_the_run_hash():
    assert config_hash(study_preset("smoke", {"replicates": 3})) == config_hash(study_preset("smoke"))
    with pytest.raises(ConfigError, match="replicates; it must be >= 1"):
        study_preset("smoke", {"replicates": 0})
