"""The lottery engine on whole (smoke) studies: the study tree, levels, re-runs, resets, the
branches (random re-init, random pruning, one-shot, stability), rewinding, resume after kill -9,
two processes under torchrun, shared dense levels, replicates, refusals of foreign or changed files."""

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
from mirl.branches import get_branch
from mirl.study.config import ConfigError, study_preset
from mirl.errors import MirlError
from mirl.study.lottery import branch_context, main_starting_weights, run_study
from mirl.models import PromptIR, build_model, load_checkpoint
from mirl.pruning import apply_mask, load_mask, magnitude_prune, masks_equal, one_shot_fraction, save_mask
from tests.conftest import FAST, subprocess_env

BRANCHES = "random_reinit,random_prune,stability,one_shot"


def _state(node: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(paths.model_file(node))[0].state_dict()


def _theta0(replicate: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(paths.init_weights(replicate))[0].state_dict()


@pytest.fixture(scope="module")
def tree(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's smoke study: 2 replicates, every branch."""
    return run_study("smoke", {"data": str(demo_data), "replicates": 2, "branches": BRANCHES, **FAST},
                     out=tmp_path_factory.mktemp("tree"))


def test_smoke_study_levels(smoke_run):
    cfg = json.loads(paths.run_config(smoke_run).read_text())
    assert smoke_run.name.startswith("smoke_") and cfg["rounds"] == 2 and cfg["non_default"]["data"]
    assert cfg["format"] == paths.LAYOUT_VERSION and cfg["hash"] == paths.run_hash(smoke_run)
    replicate = paths.replicate_dir(smoke_run, 0)
    previous = None
    for level in range(3):
        ldir = paths.level_dir(replicate, level)
        assert paths.done_file(ldir).exists()
        mask = load_mask(paths.mask_file(ldir))
        report = json.loads(paths.sparsity_file(ldir).read_text())
        assert report["prunable"]["density"] == pytest.approx(0.8**level, abs=1e-3)
        assert report["trainable"]["density"] > report["prunable"]["density"] or level == 0
        state = _state(ldir)
        assert all(torch.count_nonzero(state[n][~m]) == 0 for n, m in mask.items())
        if previous is not None:
            assert all(bool((mask[n] & ~previous[n]).sum() == 0) for n in mask), "a pruned weight came back"
        previous = mask
        metrics = json.loads(paths.metrics_file(ldir).read_text())
        assert metrics["convention"] == "upstream" and metrics["branch"] == "main" and metrics["hash"] == paths.run_hash(smoke_run)
        assert set(metrics["tasks"]) == {"denoise_25", "derain"}
        assert all(v["psnr"] > 5 for v in metrics["tasks"].values())


def test_the_study_tree(tree):
    assert paths.is_run_dir(tree) and paths.data_fingerprint(tree).is_file()
    assert paths.replicate_numbers(tree) == [0, 1]
    for r in (0, 1):
        replicate = paths.replicate_dir(tree, r)
        assert paths.init_weights(replicate).is_file()
        assert paths.branch_names(replicate, 0) == ["main", "stability"]
        for level in (1, 2):
            assert paths.branch_names(replicate, level) == ["main", "one_shot", "random_prune", "random_reinit", "stability"]
            for branch in paths.branch_names(replicate, level):
                node = paths.level_dir(replicate, level, branch)
                assert paths.is_finished(node)
                assert all((node / name).is_file() for name in paths.LEVEL_RESULT_FILES), node
                metrics = json.loads(paths.metrics_file(node).read_text())
                assert metrics["branch"] == branch and metrics["replicate"] == r and metrics["tasks"]
                assert all("per_image" in t for t in metrics["tasks"].values())
    seeds = {json.loads(paths.metrics_file(paths.level_dir(paths.replicate_dir(tree, r), 1, "random_reinit")).read_text())["seed"]
             for r in (0, 1)}
    assert len(seeds) == 2  # branch seeds derive from (replicate, level, branch)
    assert not torch.equal(_theta0(paths.replicate_dir(tree, 0))["output.weight"], _theta0(paths.replicate_dir(tree, 1))["output.weight"])


def test_random_reinit_keeps_the_tickets_mask_and_redraws_its_weights(tree):
    cfg = study_preset("smoke", {"branches": BRANCHES})
    for r in (0, 1):
        replicate = paths.replicate_dir(tree, r)
        theta0 = _theta0(replicate)
        for level in (1, 2):
            main = load_mask(paths.mask_file(paths.level_dir(replicate, level)))
            assert masks_equal(load_mask(paths.mask_file(paths.level_dir(replicate, level, "random_reinit"))), main)
            start = get_branch("random_reinit").starting_weights(branch_context(cfg, replicate, level, "random_reinit", theta0))
            kept = main["output.weight"]
            assert not torch.equal(start["output.weight"][kept], theta0["output.weight"][kept])
            assert float(start["output.weight"].std()) == pytest.approx(float(theta0["output.weight"].std()), rel=0.3)
            main_start = main_starting_weights(cfg, replicate, level, theta0)
            assert torch.equal(start["prompt1.prompt_param"], main_start["prompt1.prompt_param"])  # not reset: main's


def test_random_prune_keeps_the_tickets_count_in_every_tensor(tree):
    for r in (0, 1):
        replicate = paths.replicate_dir(tree, r)
        for level in (1, 2):
            main = load_mask(paths.mask_file(paths.level_dir(replicate, level)))
            shuffled = load_mask(paths.mask_file(paths.level_dir(replicate, level, "random_prune")))
            assert shuffled.keys() == main.keys()
            assert all(int(shuffled[n].sum()) == int(main[n].sum()) for n in main)
            assert not masks_equal(shuffled, main)
            # starting weights are the ticket's: the pruned positions differ, the kept values are theta_0's
            trained_main = _state(paths.level_dir(replicate, level))
            assert trained_main.keys() == _state(paths.level_dir(replicate, level, "random_prune")).keys()


def test_one_shot_prunes_the_dense_level_straight_to_the_level(tree):
    replicate = paths.replicate_dir(tree, 0)
    dense = _state(paths.level_dir(replicate, 0))
    for level in (1, 2):
        mask = load_mask(paths.mask_file(paths.level_dir(replicate, level, "one_shot")))
        assert masks_equal(mask, magnitude_prune(dense, None, one_shot_fraction(0.2, level), "global", "upstream",
                                                 PromptIR.unused_in_forward))


def test_one_shot_carries_level_0s_prompts_not_main_level_k_minus_1s(tree):
    """Under reset_params=upstream the prompts are carried over, not reset: one-shot prunes the
    dense level 0, so it starts from level 0's trained prompts; the ticket from its level k-1's."""
    cfg = study_preset("smoke", {"branches": BRANCHES})
    replicate = paths.replicate_dir(tree, 0)
    theta0, dense = _theta0(replicate), _state(paths.level_dir(replicate, 0))
    ctx = branch_context(cfg, replicate, 2, "one_shot", theta0)
    start = get_branch("one_shot").starting_weights(ctx)
    prompt = "prompt1.prompt_param"
    assert torch.equal(start[prompt], dense[prompt])
    assert not torch.equal(ctx.main_start[prompt], dense[prompt])  # main's level 2 carries level 1's
    assert torch.equal(start["output.weight"], theta0["output.weight"])  # the reset tensors are main's start


def test_stability_path_starts_at_the_ticket(tree):
    for r in (0, 1):
        replicate = paths.replicate_dir(tree, r)
        for level in (0, 1, 2):
            main = json.loads(paths.metrics_file(paths.level_dir(replicate, level)).read_text())
            stab = json.loads(paths.metrics_file(paths.level_dir(replicate, level, "stability")).read_text())
            assert [p["alpha"] for p in stab["path"]] == [i / 8 for i in range(9)]
            # issue 31: one crop of every test photo (the smoke preset), not the first images by name
            photos = {"barbara": 1, "china": 1, "kodim23": 1, "monarch": 1}
            assert stab["path_images_per_photo"] == {task: photos for task in main["tasks"]}
            assert stab["path_eval_limit"] == 1 and all(len(names) == 4 for names in stab["path_images"].values())
            for point, node in ((stab["path"][0], paths.level_dir(replicate, level)),
                                (stab["path"][-1], paths.level_dir(replicate, level, "stability"))):
                assert point["per_image"] == _scores_on(node, tree, stab["path_images"])  # alpha 0 is main, 1 the copy
            gains = [p["gain"] for p in (stab["path"][0], stab["path"][-1])]
            assert stab["gain_ends"] == pytest.approx(sum(gains) / 2)
            start = main_starting_weights(study_preset("smoke", {"branches": BRANCHES}), replicate, level, _theta0(replicate))
            mask = load_mask(paths.mask_file(paths.level_dir(replicate, level)))
            a, b = _state(paths.level_dir(replicate, level)), _state(paths.level_dir(replicate, level, "stability"))
            names = [n for n, _ in build_model("tiny").named_parameters()]
            norm = lambda x, y: float(torch.sqrt(sum(((x[n] - (y[n] * mask[n] if n in mask else y[n])) ** 2).sum() for n in names)))
            assert stab["distance"]["a_b"] == pytest.approx(norm(a, b), rel=1e-5)
            assert stab["distance"]["ratio"] == pytest.approx(norm(a, b) / norm(a, start), rel=1e-5)
            ends = (stab["path"][0]["psnr"] + stab["path"][-1]["psnr"]) / 2
            assert stab["barrier"] == pytest.approx(max(ends - p["psnr"] for p in stab["path"]))
            assert stab["data_seed"] != main["data_seed"]


def test_the_path_ends_are_read_off_the_scores_of_both_trained_copies(demo_data, tmp_path, monkeypatch):
    """With every test image scored (eval_limit=0), the path's alpha 0 and 1 are main's and the
    copy's own scores on the path's images: 7 restorations of the path for 9 points, the same
    numbers as restoring them again."""
    import mirl.scoring.evaluate

    settings = {"data": str(demo_data), "rounds": 1, "branches": "stability", "eval_limit": 0, **FAST}
    study = run_study("smoke", settings, out=tmp_path, nodes=[(0, 0, "main"), (0, 1, "main")])
    calls = []
    real = mirl.scoring.evaluate.evaluate_model
    monkeypatch.setattr(mirl.scoring.evaluate, "evaluate_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    run_study("smoke", settings, out=tmp_path, nodes=[(0, 1, "stability")])
    assert len(calls) == 1 + 7  # the copy's own scores, then the path's inner points
    replicate = paths.replicate_dir(study, 0)
    stab = json.loads(paths.metrics_file(paths.level_dir(replicate, 1, "stability")).read_text())
    for point, node in ((stab["path"][0], paths.level_dir(replicate, 1)), (stab["path"][-1], paths.level_dir(replicate, 1, "stability"))):
        again = _scores_on(node, study, stab["path_images"])
        assert point["per_image"].keys() == again.keys()
        for task, scores in again.items():
            assert point["per_image"][task] == pytest.approx(scores, abs=1e-9)
            assert point["tasks"][task] == pytest.approx(sum(scores.values()) / len(scores), abs=1e-9)


def _scores_on(node: Path, study: Path, names: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Per-image PSNR of ``node``'s trained network on exactly ``names`` (task -> test images)."""
    from mirl.scoring.evaluate import EvalSettings, evaluate_model

    data = json.loads(paths.run_config(study).read_text())["data"]
    out = {}
    for task, wanted in names.items():
        settings = EvalSettings(select=lambda all_names: [all_names.index(n) for n in wanted])
        scored = evaluate_model(load_checkpoint(paths.model_file(node))[0], data, [task], settings, device="cpu", progress=False)
        out[task] = {i["name"]: i["psnr"] for i in scored["tasks"][task]["per_image"]}
    return out


def test_the_barrier_reaches_the_report_index_with_its_interval(tree):
    """Issue 21, part 4: the barrier at the dense and the last level, over both replicates."""
    from mirl.analysis import evidence
    from mirl.analysis.stats import replicate_interval

    barriers = evidence.barrier_table({"reset": tree})
    assert list(barriers["level"]) == [0, 1, 2]
    numbers = evidence.barrier_headline(barriers)
    assert list(numbers) == ["reset: stability barrier, dense (dB)",
                             f"reset: stability barrier, level 2 ({barriers.iloc[-1]['remaining trainable (%)']:.3g}% trainable) (dB)"]
    found = [json.loads(paths.metrics_file(paths.level_dir(paths.replicate_dir(tree, r), 2, "stability")).read_text()) for r in (0, 1)]
    expected = replicate_interval([m["barrier"] for m in found], images=int(found[0]["path"][0]["images"]))
    last = numbers[list(numbers)[-1]]
    assert last.startswith(f"{expected.format('', signed=True)} beside a gain over the input of ")
    assert last.endswith(f"(n = {expected.sample_size})") and "2 seeds (each the mean over 8 test images)" in last


def test_a_second_copy_with_the_tickets_own_seed_has_no_barrier(demo_data, tmp_path, monkeypatch):
    from mirl.branches.stability import Stability

    monkeypatch.setattr(Stability, "data_seed", lambda self, ctx: ctx.replicate_seed)
    study = run_study("smoke", {"data": str(demo_data), "rounds": 1, "branches": "stability", **FAST}, out=tmp_path)
    replicate = paths.replicate_dir(study, 0)
    for level in (0, 1):
        stab = json.loads(paths.metrics_file(paths.level_dir(replicate, level, "stability")).read_text())
        assert abs(stab["barrier"]) < 1e-6, stab["path"]
        a, b = _state(paths.level_dir(replicate, level)), _state(paths.level_dir(replicate, level, "stability"))
        assert all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)


def _comparable(metrics: dict) -> dict:
    out = {k: v for k, v in metrics.items() if k not in ("train",)}
    train = {k: v for k, v in metrics["train"].items() if "second" not in k and "images_per" not in k and k != "resumed_from"}
    return {**out, "train": train}


def test_branches_run_in_any_order_with_the_same_files(tree, demo_data, tmp_path):
    out = tmp_path / "other"
    study = run_study("smoke", {"data": str(demo_data), **FAST}, out=out)  # main only
    assert study.name == tree.name  # branches do not change the study's identity
    settings = {"data": str(demo_data), "branches": "random_reinit", **FAST}
    run_study("smoke", settings, out=out, nodes=[(0, 2, "random_reinit")])
    assert not paths.level_dir(paths.replicate_dir(study, 0), 1, "random_reinit").exists()
    run_study("smoke", settings, out=out, nodes=[(0, 1, "random_reinit")])
    for level in (1, 2):
        for branch in ("main", "random_reinit"):
            a = paths.level_dir(paths.replicate_dir(study, 0), level, branch)
            b = paths.level_dir(paths.replicate_dir(tree, 0), level, branch)
            assert masks_equal(load_mask(paths.mask_file(a)), load_mask(paths.mask_file(b)))
            sa, sb = _state(a), _state(b)
            assert all(torch.equal(sa[n], sb[n]) for n in sa), (level, branch)
            assert _comparable(json.loads(paths.metrics_file(a).read_text())) == _comparable(json.loads(paths.metrics_file(b).read_text()))


def test_a_branch_needs_the_main_level_its_mask_is_pruned_from(demo_data, tmp_path):
    with pytest.raises(MirlError, match="main's mask of level 1 is pruned from its trained level 0, which .*level_0/main does not hold yet"):
        run_study("smoke", {"data": str(demo_data), "branches": "random_reinit", **FAST}, out=tmp_path, nodes=[(0, 1, "random_reinit")])


def test_the_control_setting_names_branches():
    with pytest.raises(ConfigError, match="branches=random_reinit"):
        study_preset("smoke", {"control": "random_reinit"})
    from mirl.branches import registry

    with pytest.raises(ConfigError, match=f"unknown branch 'bogus'; valid: {', '.join(registry())}"):
        study_preset("smoke", {"branches": "random_reinit,bogus"})
    with pytest.raises(ConfigError, match="stability_alphas"):
        study_preset("smoke", {"stability_alphas": "0.25,0.5"})


def test_reset_to_theta0_keeps_prompts_trained(smoke_run):
    cfg = study_preset("smoke")
    replicate = paths.replicate_dir(smoke_run, 0)
    theta0 = _theta0(replicate)
    trained = _state(paths.level_dir(replicate, 0))
    start = main_starting_weights(cfg, replicate, 1, theta0)
    assert torch.equal(start["patch_embed.proj.weight"], theta0["patch_embed.proj.weight"])
    assert torch.equal(start["encoder_level1.0.norm1.body.bias"], theta0["encoder_level1.0.norm1.body.bias"])
    assert torch.equal(start["prompt1.prompt_param"], trained["prompt1.prompt_param"])
    assert not torch.equal(start["prompt1.prompt_param"], theta0["prompt1.prompt_param"])
    cfg_all = study_preset("smoke", {"reset_params": "all"})
    assert torch.equal(main_starting_weights(cfg_all, replicate, 1, theta0)["prompt1.prompt_param"], theta0["prompt1.prompt_param"])


def test_rerun_skips_finished_levels(smoke_run, demo_data):
    node = paths.level_dir(paths.replicate_dir(smoke_run, 0), 2)
    stamp = paths.model_file(node).stat().st_mtime_ns
    again = run_study("smoke", {"data": str(demo_data), **FAST}, out=smoke_run.parent)
    assert again == smoke_run and paths.model_file(node).stat().st_mtime_ns == stamp


def _train_log(node: Path) -> list[dict[str, str]]:
    import csv

    with open(paths.train_log_file(node)) as fh:
        return list(csv.DictReader(fh))


def test_rewind_resets_to_weights_after_k_steps(demo_data, tmp_path):
    settings = {"reset": "rewind", "rewind_steps": 2, "rounds": 1}
    study = run_study("smoke", {"data": str(demo_data), **settings, "branches": "stability,random_reinit", **FAST}, out=tmp_path)
    replicate = paths.replicate_dir(study, 0)
    rewound, meta = load_checkpoint(paths.rewind_weights(replicate))
    assert meta["metadata"]["theta"] == 2
    # every rewound level, of main and of each branch, resumes the dense run at step 2 (open_lth):
    # the AdamW state of step 2, the schedule from step 3 on, and the remaining 6 - 2 steps
    point = torch.load(paths.rewind_state(replicate), weights_only=True)
    assert point["step"] == 2 and all(int(s["step"]) == 2 for s in point["optimizer"]["state"].values())
    dense_lr = {r["step"]: r["lr"] for r in _train_log(paths.level_dir(replicate, 0))}
    for branch in ("main", "stability", "random_reinit"):
        rows = _train_log(paths.level_dir(replicate, 1, branch))
        assert [r["step"] for r in rows] == ["3", "4", "5", "6"], branch
        assert [r["lr"] for r in rows] == [dense_lr[r["step"]] for r in rows], branch
        assert json.loads(paths.metrics_file(paths.level_dir(replicate, 1, branch)).read_text())["train"]["started_at"] == 2
    theta0 = _theta0(replicate)
    assert not torch.equal(rewound.state_dict()["output.weight"], theta0["output.weight"])
    start = main_starting_weights(study_preset("smoke", settings), replicate, 1, theta0)
    assert torch.equal(start["output.weight"], rewound.state_dict()["output.weight"])
    assert paths.is_finished(paths.level_dir(replicate, 1, "stability"))


def test_dense_level_is_shared_between_studies_that_differ_in_pruning(smoke_run, demo_data):
    variant = run_study("smoke", {"data": str(demo_data), "fraction": 0.5, "rounds": 1, **FAST}, out=smoke_run.parent)
    assert variant != smoke_run
    mine, source = paths.level_dir(paths.replicate_dir(variant, 0), 0), paths.level_dir(paths.replicate_dir(smoke_run, 0), 0)
    reused = json.loads(paths.reused_file(mine).read_text())
    assert reused["source"] == str(paths.replicate_dir(smoke_run, 0))
    assert paths.model_file(mine).read_bytes() == paths.model_file(source).read_bytes()
    assert json.loads(paths.done_file(mine).read_text())["hash"] == paths.run_hash(variant)
    assert paths.done_file(paths.level_dir(paths.replicate_dir(variant, 0), 1)).exists()
    other_seed = run_study("smoke", {"data": str(demo_data), "seed": 1, "rounds": 0, **FAST}, out=smoke_run.parent)
    assert not paths.reused_file(paths.level_dir(paths.replicate_dir(other_seed, 0), 0)).exists()


def test_a_sibling_trained_on_other_data_is_not_reused(smoke_run, demo_data, tmp_path):
    """Issue 31: the built-in corpus lost two training photos to its val split; a dense level
    trained on the old files (another data.json) is not copied into a study of the new ones."""
    sibling = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, sibling)
    recorded = json.loads(paths.data_fingerprint(sibling).read_text())
    recorded["train"] = {**recorded["train"], "train/denoise/Corpus/chelsea.png": 1}
    paths.data_fingerprint(sibling).write_text(json.dumps(recorded))
    study = run_study("smoke", {"data": str(demo_data), "rounds": 0, "fraction": 0.5, **FAST}, out=tmp_path)
    assert not paths.reused_file(paths.level_dir(paths.replicate_dir(study, 0), 0)).exists()


def test_a_broken_sibling_dense_level_is_passed_over(smoke_run, demo_data, tmp_path):
    sibling = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, sibling)
    paths.model_file(paths.level_dir(paths.replicate_dir(sibling, 0), 0)).write_bytes(b"broken")
    with pytest.warns(UserWarning, match="not reusing the dense level"):
        study = run_study("smoke", {"data": str(demo_data), "rounds": 0, "fraction": 0.5, **FAST}, out=tmp_path)
    replicate = paths.replicate_dir(study, 0)
    assert paths.is_finished(paths.level_dir(replicate, 0)) and not paths.reused_file(paths.level_dir(replicate, 0)).exists()
    assert not [p for p in replicate.rglob(".main.*")]


def test_replicates_grow_in_place_and_resume_one_by_one(smoke_run, demo_data, tmp_path, capsys):
    from mirl.cli import main

    study = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, study)  # seed 0, finished: replicate 0 is kept as it is
    first = {p: p.stat().st_mtime_ns for p in paths.replicate_dir(study, 0).rglob("*")}
    assert run_study("smoke", {"data": str(demo_data), "replicates": 2, **FAST}, out=tmp_path) == study
    replicate1 = paths.replicate_dir(study, 1)
    assert all(paths.is_finished(paths.level_dir(replicate1, k)) for k in range(3))
    assert {p: p.stat().st_mtime_ns for p in paths.replicate_dir(study, 0).rglob("*")} == first
    paths.done_file(paths.level_dir(replicate1, 2)).unlink()
    kept = [*paths.replicate_dir(study, 0).rglob("*"), *paths.level_dir(replicate1, 0).rglob("*"), *paths.level_dir(replicate1, 1).rglob("*")]
    others = {p: p.stat().st_mtime_ns for p in kept}
    args = ["lottery", "--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--set", f"data={demo_data}", "replicates=2"]
    assert main(args) == 0
    assert paths.done_file(paths.level_dir(replicate1, 2)).is_file()
    assert {p: p.stat().st_mtime_ns for p in others} == others
    out = capsys.readouterr().out
    assert "95% t-interval across 2 seeds (df = 1)" in out and "x 2 rep" in out and f"study: {study}" in out


# ---- refusals: another study's files, changed data, damaged files (issue 23) ---------------

def _copy(smoke_run: Path, tmp_path: Path) -> Path:
    study = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, study)
    return study


def test_another_studys_files_are_not_adopted(smoke_run, demo_data, tmp_path):
    study = _copy(smoke_run, tmp_path)
    paths.run_config(study).unlink()
    with pytest.raises(MirlError, match="holds results but no config.json"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
    shutil.rmtree(study)
    study = _copy(smoke_run, tmp_path)
    done = paths.done_file(paths.level_dir(paths.replicate_dir(study, 0), 1))
    done.write_text(json.dumps({**json.loads(done.read_text()), "study": "smoke_0bad0bad", "hash": "0bad0bad"}))
    with pytest.raises(MirlError, match="written by study 'smoke_0bad0bad'"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)


def test_changed_data_is_refused_naming_the_files(smoke_run, demo_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    study = run_study("smoke", {"data": str(data), "rounds": 0, **FAST}, out=tmp_path / "runs")
    victim = sorted((data / "test" / "derain").rglob("*.png"))[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(MirlError, match=f"data folder .* changed .*test/{victim.relative_to(data / 'test').as_posix()} \\(changed\\)"):
        run_study("smoke", {"data": str(data), "rounds": 0, **FAST}, out=tmp_path / "runs")
    assert study.is_dir()


def test_a_wrong_shape_mask_is_refused_on_resume(smoke_run, demo_data, tmp_path):
    study = _copy(smoke_run, tmp_path)
    node = paths.level_dir(paths.replicate_dir(study, 0), 2)
    paths.done_file(node).unlink()
    mask = load_mask(paths.mask_file(node))
    mask["patch_embed.proj.weight"] = torch.ones(3, 3, dtype=torch.bool)
    save_mask(paths.mask_file(node), mask)
    with pytest.raises(MirlError, match="patch_embed.proj.weight has shape \\(3, 3\\)"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
    del mask["patch_embed.proj.weight"]
    save_mask(paths.mask_file(node), mask)
    with pytest.raises(MirlError, match="lacks 1 tensor"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)


@pytest.mark.parametrize("damage", ["no model", "truncated metrics", "list metrics", "no metrics"])
def test_a_damaged_finished_level_is_one_line(smoke_run, demo_data, tmp_path, damage):
    study = _copy(smoke_run, tmp_path)
    node = paths.level_dir(paths.replicate_dir(study, 0), 1)
    if damage == "no model":
        paths.model_file(node).unlink()
    elif damage == "no metrics":
        paths.metrics_file(node).unlink()
    else:
        paths.metrics_file(node).write_text('{"level": 1, "tas' if damage.startswith("truncated") else "[1, 2]")
    with pytest.raises(MirlError, match=f"{node}.*remove .*done.json"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)


def test_a_truncated_config_says_how_to_restore_it(smoke_run, demo_data, tmp_path):
    study = _copy(smoke_run, tmp_path)
    original = json.loads(paths.run_config(study).read_text())
    paths.run_config(study).write_text('{"format": 2, "na')
    with pytest.raises(MirlError, match="restore the file with `mv .*config.json.expected .*config.json`.*finished levels are kept"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
    expected = json.loads((study / "config.json.expected").read_text())
    assert {k: v for k, v in expected.items() if k != "progress"} == {k: v for k, v in original.items() if k != "progress"}


def test_a_study_of_the_old_layout_is_refused_in_one_line(tmp_path):
    from mirl.analysis import results
    old = tmp_path / "quickstart_68b428ae"
    (old / "level_0").mkdir(parents=True)
    paths.run_config(old).write_text(json.dumps({"name": old.name, "preset": "quickstart", "seed": 0}))
    with pytest.raises(MirlError, match="older mirl layout.*mirl lottery --preset quickstart --out"):
        results.load_config(old)


def test_layer_collapse_is_reported_and_warned():
    from mirl.study.lottery import warn_collapse
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
    stale = paths.level_dir(paths.replicate_dir(run, 0), 1) / ".train_log.csv.k1ll3d.tmp"
    stale.write_text("step,loss\n1,")
    before = sorted(p.relative_to(run) for p in run.rglob("*") if p != stale)
    run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
    assert not stale.exists()
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


@pytest.mark.slow
def test_resume_after_kill_inside_a_branch_gives_the_files_of_an_uninterrupted_run(demo_data, tmp_path):
    extra = ("branches=random_reinit",)
    reference = tmp_path / "reference"
    subprocess.run(_lottery_cmd(reference, demo_data, *extra), check=True, env=subprocess_env(), capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_lottery_cmd(killed, demo_data, *extra), env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 300
    target = None
    while time.time() < deadline and proc.poll() is None:
        states = [s for r in killed.glob("*/replicate_0")
                  if (s := paths.train_state_file(paths.level_dir(r, 1, "random_reinit"))).exists()]
        if states:
            target = states[0]
            break
        time.sleep(0.01)
    assert target is not None, f"the run ended before the branch checkpointed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    node = target.parent
    replicate = node.parent.parent
    assert not paths.is_finished(node)
    subprocess.run(_lottery_cmd(killed, demo_data, *extra), check=True, env=subprocess_env(), capture_output=True)
    assert json.loads(paths.metrics_file(node).read_text())["train"]["resumed_from"] > 0
    ref_replicate = reference / replicate.parent.name / replicate.name
    for level in range(3):
        for branch in ("main", "random_reinit") if level else ("main",):
            a, b = paths.level_dir(replicate, level, branch), paths.level_dir(ref_replicate, level, branch)
            assert masks_equal(load_mask(paths.mask_file(a)), load_mask(paths.mask_file(b))), (level, branch)
            sa, sb = _state(a), _state(b)
            assert all(torch.equal(sa[n], sb[n]) for n in sa), f"level {level} {branch}: weights differ after resume"
    assert not list(replicate.rglob("*.tmp"))


@pytest.mark.slow
def test_two_processes_with_torchrun(demo_data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mirl", "lottery", "--preset", "smoke", "--out", str(tmp_path), "--no-progress",
           "--set", f"data={demo_data}", "rounds=1"]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = paths.replicate_dir(next(tmp_path.glob("smoke_*")), 0)
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




def test_a_damaged_score_file_of_a_finished_level_is_named_with_what_to_do(demo_data, tmp_path):
    study = run_study("smoke", {"data": str(demo_data), "rounds": 0, **FAST}, out=tmp_path)
    node = paths.level_dir(paths.replicate_dir(study, 0), 0)
    paths.metrics_file(node).write_text('{"level": 0, ')
    with pytest.raises(MirlError, match=rf"{paths.metrics_file(node)} cannot be read .*the scores of a finished level: "
                                         rf"remove {paths.done_file(node)} to train and score the level again"):
        run_study("smoke", {"data": str(demo_data), "rounds": 0, **FAST}, out=tmp_path)


# ---- a node's identity: foreign or copied nodes are not adopted (issue 33, case 3) -----------

def test_a_finished_node_records_its_place_seed_and_weights(smoke_run):
    from mirl.study.lottery import node_identity, weights_fingerprint

    cfg = study_preset("smoke", {"data": "x"})
    node = paths.level_dir(paths.replicate_dir(smoke_run, 0), 2)
    done, metrics = (json.loads(f(node).read_text()) for f in (paths.done_file, paths.metrics_file))
    wanted = node_identity(cfg, 0, 2, "main")
    assert {k: done[k] for k in wanted} == {k: metrics[k] for k in wanted} == wanted
    assert done["weights"] == metrics["weights"] == weights_fingerprint(_state(node))


def test_a_copied_replicate_is_refused(smoke_run, demo_data, tmp_path):
    """`cp -a replicate_0 replicate_1` with replicates=2: replicate 1 is not adopted."""
    study = _copy(smoke_run, tmp_path)
    shutil.copytree(paths.replicate_dir(study, 0), paths.replicate_dir(study, 1))
    copied = paths.done_file(paths.level_dir(paths.replicate_dir(study, 1), 0))
    with pytest.raises(MirlError, match=rf"^{copied} belongs to another node: it records replicate 0 \(here: 1\), seed 0 \(here: 1\); "
                                        rf"these are another node's files copied here: delete the folder {copied.parent} to run"):
        run_study("smoke", {"data": str(demo_data), "replicates": 2, **FAST}, out=tmp_path)


def test_a_node_copied_over_another_level_or_branch_is_refused(smoke_run, demo_data, tmp_path):
    study = _copy(smoke_run, tmp_path)
    replicate = paths.replicate_dir(study, 0)
    shutil.copytree(paths.level_dir(replicate, 1), paths.level_dir(replicate, 1, "random_reinit"))
    with pytest.raises(MirlError, match=r"random_reinit/done.json belongs to another node: it records branch 'main' \(here: "
                                        r"'random_reinit'\), seed 0 \(here: \d+\)"):
        run_study("smoke", {"data": str(demo_data), "branches": "random_reinit", **FAST}, out=tmp_path)
    shutil.rmtree(paths.level_dir(replicate, 1, "random_reinit"))
    shutil.rmtree(paths.level_dir(replicate, 2))
    shutil.copytree(paths.level_dir(replicate, 1), paths.level_dir(replicate, 2))
    with pytest.raises(MirlError, match=r"level_2/main/done.json belongs to another node: it records level 1 \(here: 2\)"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)


@pytest.mark.parametrize("file", ["done", "metrics"])
def test_a_finished_node_without_its_identity_is_refused(smoke_run, demo_data, tmp_path, file):
    study = _copy(smoke_run, tmp_path)
    node = paths.level_dir(paths.replicate_dir(study, 0), 1)
    record = paths.done_file(node) if file == "done" else paths.metrics_file(node)
    data = json.loads(record.read_text())
    for key in ("replicate", "level", "branch", "seed"):
        del data[key]
    record.write_text(json.dumps(data))
    missing = "replicate, level, branch" if file == "done" else "replicate, level, branch, seed"
    with pytest.raises(MirlError, match=rf"^{record} does not record which node it belongs to \(no {missing}: .*delete the "
                                        rf"folder {node} to run this node again$"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)


def test_a_dense_training_state_in_a_pruned_node_is_refused(smoke_run, demo_data, tmp_path):
    """Dense trained weights saved into an unfinished pruned node, even under its own name: the
    node is not finished with its pruned weights back."""
    from mirl.study.lottery import node_identity

    study = _copy(smoke_run, tmp_path)
    replicate = paths.replicate_dir(study, 0)
    node = paths.level_dir(replicate, 2)
    paths.done_file(node).unlink()
    dense = load_checkpoint(paths.model_file(paths.level_dir(replicate, 0)))[0]
    state = {"model": dense.state_dict(), "optimizer": torch.optim.AdamW(dense.parameters()).state_dict(), "step": 6, "log": [],
             "node": node_identity(study_preset("smoke"), 0, 2, "main")}
    torch.save(state, paths.train_state_file(node))
    with pytest.raises(MirlError, match=r"weight\(s\) of .* that this level's mask prunes are non-zero"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
    assert not paths.is_finished(node)


# ---- a plain run never deletes the temporaries of a node that another process writes (issue 33, case 9)

@pytest.mark.parametrize("held_node", ["finished", "unfinished"])
def test_a_plain_run_leaves_the_temporaries_of_a_node_another_process_holds(smoke_run, demo_data, tmp_path, held_node):
    from mirl.runlock import RunLock

    study = _copy(smoke_run, tmp_path)
    replicate = paths.replicate_dir(study, 0)
    held, free = paths.level_dir(replicate, 2), paths.level_dir(replicate, 1)
    live = held / ".metrics.json.wr1t1ng.tmp"
    stale = [free / ".train_log.csv.k1ll3d.tmp", free / "tensorboard" / ".events.k1ll3d.tmp", replicate / ".init.pt.k1ll3d.tmp"]
    for path in (live, *stale):
        path.write_text("{")
    if held_node == "unfinished":
        paths.done_file(held).unlink()
    with RunLock(held):  # a job of --launcher local running that node
        if held_node == "unfinished":
            with pytest.raises(MirlError, match="is in use by another mirl process"):
                run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
        else:
            run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
        assert live.read_text() == "{"
    assert not any(p.exists() for p in stale)


def test_a_full_disk_at_the_score_writer_is_one_line_and_the_node_is_not_done(smoke_run, demo_data, tmp_path, monkeypatch):
    import errno

    from torch.utils.tensorboard import SummaryWriter

    study = _copy(smoke_run, tmp_path)
    node = paths.level_dir(paths.replicate_dir(study, 0), 2)
    shutil.rmtree(node)
    add_scalar = SummaryWriter.add_scalar

    def full(self, tag, *args, **kwargs):
        if tag.startswith("test/"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return add_scalar(self, tag, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", full)
    with pytest.raises(MirlError, match=rf"^no space left on device while writing the TensorBoard events in {node}/tensorboard/test; "
                                        "this node is not marked done: free some space and run the same command again"):
        run_study("smoke", {"data": str(demo_data), **FAST}, out=tmp_path)
    assert not paths.is_finished(node) and not paths.metrics_file(node).exists()


def test_a_layerwise_upstream_study_is_warned_in_the_log_and_the_summary(demo_data, tmp_path, capsys):
    """rule=upstream with scope=layerwise cuts every LayerNorm scale by the round's fraction: the
    study says so in log.txt (the rule, and each node whose norm scales lost more than half) and in
    the CLI summary; the same study with the default rule prunes no norm scale and says nothing."""
    from mirl.commands.lottery import print_summary

    settings = {"data": str(demo_data), "scope": "layerwise", "rounds": 1, "fraction": 0.7, **FAST}
    study = run_study("smoke", {**settings, "rule": "upstream"}, out=tmp_path)
    text = (study / "log.txt").read_text()
    assert "rule=upstream with scope=layerwise" in text
    assert "replicate 0, level 1, main: " in text and "normalisation scale(s) lost more than half" in text
    print_summary(study)
    out = capsys.readouterr().out
    assert "warning: replicate 0, level 1, main: " in out and "normalisation scale(s) lost more than half" in out
    default = run_study("smoke", settings, out=tmp_path)
    assert default != study and "rule=upstream" not in (default / "log.txt").read_text()
    report = json.loads(paths.sparsity_file(level_dir_of(default, 1)).read_text())
    assert not [n for n in report["tensors"] if ".norm" in n]
    print_summary(default)
    assert "normalisation" not in capsys.readouterr().out


def level_dir_of(study: Path, level: int) -> Path:
    return paths.level_dir(paths.replicate_dir(study, 0), level)
