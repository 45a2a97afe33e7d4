"""The fast training path learns the same as the reference path, and every benchmark's main
function runs with tiny sizes on the CPU."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from benchmarks import inference, pruning, train
from mirl.models import build_model
from mirl.pruning.magnitude import magnitude_prune
from mirl.pruning.rules import prunable_names
from mirl.study.step import StepOptions


@pytest.mark.parametrize("preset,channels_last", [("tiny", False), ("tiny", True), ("small", True)])
def test_fast_training_steps_match_reference(preset, channels_last):
    """Five AdamW steps from the same weights on the same batches: same losses and parameters
    within float tolerance (CPU fast path: fast impl, fused AdamW; channels-last as on CUDA)."""
    device = torch.device("cpu")
    batches = train.make_batches(5, 2, 32, seed=3)
    torch.manual_seed(0)
    init = build_model(preset).state_dict()
    fast_cfg = dataclasses.replace(train.fast_path(device), channels_last=channels_last)
    assert fast_cfg.impl == "fast" and fast_cfg.optimizer == "fused"
    ref = train.Trainer(preset, train.reference_path(), device, state_dict=init)
    fast = train.Trainer(preset, fast_cfg, device, state_dict=init)
    for x, y in batches:
        torch.testing.assert_close(fast.step(x, y), ref.step(x, y), rtol=1e-4, atol=1e-6)
    fast_params = dict(fast.model.named_parameters())
    for name, p_ref in ref.model.named_parameters():
        torch.testing.assert_close(fast_params[name], p_ref, rtol=1e-4, atol=2e-6, msg=name)


def test_masked_training_keeps_pruned_weights_zero():
    masks = train.random_masks("tiny", 0.5, seed=1)
    trainer = train.Trainer("tiny", train.fast_path(torch.device("cpu")), torch.device("cpu"), masks=masks)
    for x, y in train.make_batches(2, 2, 32, seed=0):
        trainer.step(x, y)
    params = dict(trainer.model.named_parameters())
    for name, m in masks.items():
        assert torch.all(params[name][m == 0] == 0), name


def test_benchmark_times_the_study_step():
    """The fast path is the step the study builds on the device (single process, default
    settings); the reference path is fp32, torch's AdamW, eager; masks follow the study's rule."""
    for device in (torch.device("cpu"), torch.device("cuda")):
        assert train.fast_path(device).options() == StepOptions.for_study(device, impl="fast")
    assert train.reference_path().options() == StepOptions()
    net = build_model("tiny")
    for rule in ("upstream", "conv"):
        expected = prunable_names(net.state_dict(), rule, unused=net.unused_in_forward)
        assert list(train.random_masks("tiny", 0.5, rule=rule)) == expected


def test_numpy_and_torch_pruning_agree():
    weights, masks = pruning.setup("tiny", torch.device("cpu"))
    a = pruning.numpy_global_prune({k: v.clone() for k, v in weights.items()}, masks, 0.2)
    b = magnitude_prune({k: v.clone() for k, v in weights.items()}, masks, 0.2)
    assert all(torch.equal(a[n], b[n]) for n in masks)
    kept = sum(int(t.sum()) for t in a.values())
    total = sum(t.numel() for t in a.values())
    assert abs(kept / total - 0.8) < 0.01


def test_benchmark_mains_run_tiny_on_cpu(tmp_path):
    out = train.main(["--preset", "tiny", "--batch", "2", "--patch", "32", "--steps", "1", "--warmup", "1",
                      "--device", "cpu", "--loss-curve", "3", "--curve-out", str(tmp_path / "curve"),
                      "--json", str(tmp_path / "train.json")])
    assert out["speedup"] > 0 and (tmp_path / "curve.json").exists()
    assert json.loads((tmp_path / "curve.json").read_text())["max_abs_diff"] < 1e-4
    out = pruning.main(["--preset", "tiny", "--device", "cpu", "--iters", "1"])
    assert all(v == 0 for v in out["mask_disagreements_vs_numpy"].values())
    out = inference.main(["--preset", "tiny", "--device", "cpu", "--size", "32x48", "--max-side", "32",
                          "--tiled-size", "64", "--tile", "32", "--iters", "1"])
    assert out["psnr"]["max_abs_delta_db"] < 0.5
    assert out["tiled"]["size"] == 64


@pytest.mark.slow
def test_gpu_script_runs_every_stage_on_cpu(tmp_path):
    """The one-shot GPU script must keep working between GPU sessions (tiny sizes on the CPU)."""
    from benchmarks import gpu_all

    res = gpu_all.main(["--device", "cpu", "--skip", "compile", "--out", str(tmp_path / "gpu_all.json")])
    assert not res["errors"], res["errors"]
    assert res["stages"]["study_smoke"]["levels"] == 3
    assert json.loads((tmp_path / "gpu_all.json").read_text())["summary"]
    # the compile stage's rows (too slow to compile on the CPU) are summarised like this:
    fast = res["stages"]["train_b2_p32"]["rows"][-1]
    res["stages"]["compile"] = {"rows": [{**fast, "size": "b2/p32", "memory_budget": 0.7, "fast_ms_per_step": 1.0,
                                          "speedup_vs_reference": 3.5, "memory_ratio_vs_reference": 0.4,
                                          "steady_memory_ratio_vs_reference": 0.38, "breakeven_steps": 10,
                                          "steps_per_round": 100}]}
    checks = {row["check"]: row for row in gpu_all.summarise(res)}
    assert checks["compile (regional) b2/p32 budget 0.7 speedup / memory ratio (timed steps only)"]["pass"] == "yes"


def test_memory_model_follows_storage_lifetimes_and_sees_the_saved_activations():
    """The GPU-free memory model counts what lives (a freed temporary leaves the peak, not the
    current bytes), and on the tiny network it finds what the saved-tensor hooks find: the fast
    bf16 path keeps about a third of the reference's activations for backward."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from benchmarks import memory_model

    with FakeTensorMode():
        a = torch.empty(1000)  # 4000 bytes: one 4096-byte allocator block
        with memory_model.LiveBytes() as live:
            live.adopt([a])
            b = a * 2
            view = b[:10]
            del b
            assert live.current == 8192  # the view keeps b's storage alive
            del view
    assert (live.current, live.peak) == (4096, 8192)

    ref = memory_model.step_memory("tiny", 2, 32, memory_model.PATHS["reference"])
    fast = memory_model.step_memory("tiny", 2, 32, memory_model.PATHS["fast"])
    assert ref["weights_and_state_gib"] == fast["weights_and_state_gib"] > 0
    assert 0.2 < fast["saved_for_backward_gib"] / ref["saved_for_backward_gib"] < 0.34
    assert fast["peak_gib"] < ref["peak_gib"]
    # by module: the blocks' parts add up over all blocks; the fast GDFN keeps only project_in's
    # output, where the reference keeps the depth-wise convolution's and the gate's too
    assert sum(ref["kept_by_module"].values()) <= ref["saved_for_backward_gib"] + 1e-9
    assert {"block.ffn.project_in", "block.ffn.dwconv", "block.ffn"} <= set(ref["kept_by_module"])
    assert "block.ffn.dwconv" not in fast["kept_by_module"] and "block.ffn.project_in" in fast["kept_by_module"]


def test_bf16_loss_curve_comes_with_an_fp32_control(tmp_path):
    """The bf16 curve is judged against the drift of an fp32 run of the same fast path."""
    fast = dataclasses.replace(train.fast_path(torch.device("cpu")), amp=True)
    c = train.loss_curves("tiny", fast, torch.device("cpu"), steps=3, batch=2, patch=32, smooth=2)
    assert len(c["fast fp32"]) == len(c["fast"]) == len(c["reference"]) == 3
    assert 0 <= c["control_max_rel_diff_smoothed"] < 1e-3  # fp32 reordering: tiny drift
    assert c["control_max_rel_diff_smoothed"] < c["max_rel_diff_smoothed"]  # bf16 rounds more
    assert train.plot_curves(c, str(tmp_path / "curve.png"))
