"""The dense_same_size branch (Liu et al. 2019): a narrower dense PromptIR with main's remaining
parameter count at every pruned level, recorded, exported and restored like any node; and
refill_scratch's mask (refill's) with fresh starting weights, exported narrowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mirl import paths
from mirl.branches import get_branch
from mirl.branches.dense_same_size import same_size_config, scaled_config
from mirl.cli import main
from mirl.models import load_checkpoint
from mirl.models.config import parameter_count, preset
from mirl.pruning import load_mask
from mirl.study.lottery import run_study
from tests.conftest import FAST

BRANCHES = "dense_same_size,refill,refill_scratch"


@pytest.fixture(scope="module")
def study(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's command: smoke with branches=dense_same_size,refill,refill_scratch."""
    return run_study("smoke", {"data": str(demo_data), "branches": BRANCHES, **FAST}, out=tmp_path_factory.mktemp("dense"))


def _levels(study: Path) -> list[int]:
    return [k for k in paths.level_numbers(paths.replicate_dir(study, 0)) if k >= 1]


def test_dense_count_is_within_ten_percent_of_mains_remaining_count_at_every_level(study: Path) -> None:
    replicate = paths.replicate_dir(study, 0)
    theta0, _ = load_checkpoint(paths.init_weights(replicate))
    total = sum(t.numel() for t in theta0.state_dict().values())
    assert _levels(study) == [1, 2]
    for level in _levels(study):
        main_mask = load_mask(paths.mask_file(paths.level_dir(replicate, level)))
        expected = total - sum(int((~m).sum()) for m in main_mask.values())  # main's weights left, counted from its mask
        node = paths.level_dir(replicate, level, "dense_same_size")
        net, _ = load_checkpoint(paths.model_file(node))  # rebuilt from the configuration model.pt records
        own = sum(p.numel() for p in net.parameters())
        assert net.config.dim < theta0.config.dim or net.config.ffn_expansion_factor < theta0.config.ffn_expansion_factor
        assert abs(own - expected) <= 0.10 * expected, (level, own, expected)
        metrics = json.loads(paths.metrics_file(node).read_text())
        assert (metrics["parameters"], metrics["main_remaining"]) == (own, expected)
        assert metrics["density_trainable"] == 1.0 and metrics["network"] == net.config.to_dict()
        mask = load_mask(paths.mask_file(node))
        assert all(bool(m.all()) for m in mask.values()) and set(mask) <= set(net.state_dict())


def test_same_size_config_scales_every_width_by_one_factor() -> None:
    base = preset("small")
    for fraction in (0.8, 0.5, 0.2):
        target = int(parameter_count(base) * fraction)
        config = same_size_config(base, target)
        assert abs(parameter_count(config) - target) <= 0.10 * target
        factor = config.dim / base.dim
        assert factor <= 1 and config.prompt_sizes == tuple(max(1, round(s * factor)) for s in base.prompt_sizes)
    assert scaled_config(base, 7) is None  # an odd dim cannot be downsampled


def test_refill_scratch_has_refills_mask_and_other_starting_weights(study: Path) -> None:
    replicate = paths.replicate_dir(study, 0)
    for level in _levels(study):
        refill, scratch = (paths.level_dir(replicate, level, b) for b in ("refill", "refill_scratch"))
        a, b = load_mask(paths.mask_file(refill)), load_mask(paths.mask_file(scratch))
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    from mirl.study.config import study_preset
    from mirl.study.lottery import branch_context

    cfg = study_preset("smoke", {"data": "unused", "branches": BRANCHES})
    theta0 = load_checkpoint(paths.init_weights(replicate))[0].state_dict()
    ctx = {b: branch_context(cfg, replicate, 2, b, theta0) for b in ("refill", "refill_scratch")}
    refill_start = get_branch("refill").starting_weights(ctx["refill"])
    scratch_start = get_branch("refill_scratch").starting_weights(ctx["refill_scratch"])
    assert refill_start.keys() == scratch_start.keys()
    for name in ("patch_embed.proj.weight", "output.weight", "prompt1.prompt_param"):
        assert not torch.equal(scratch_start[name], refill_start[name]), name  # refill starts from main's start
        assert not torch.equal(scratch_start[name], ctx["refill"].main_start[name]), name


def test_refill_scratch_exports_narrowed_and_restores(study: Path, demo_data: Path, tmp_path: Path) -> None:
    node = paths.level_dir(paths.replicate_dir(study, 0), 2, "refill_scratch")
    out = tmp_path / "scratch.pt"
    assert main(["export", str(node), "--format", "narrow", "--out", str(out)]) == 0
    model, meta = load_checkpoint(out)
    masked, _ = load_checkpoint(paths.model_file(node))
    assert meta["narrow"] and sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in masked.parameters())
    photos = sorted((demo_data / "test").rglob("*.png"))[:1]
    assert main(["restore", str(out), *map(str, photos), "--out", str(tmp_path / "restored"), "--no-progress"]) == 0
    assert list((tmp_path / "restored").rglob("*.png"))


def test_dense_same_size_exports_sparse_and_restores(study: Path, demo_data: Path, tmp_path: Path) -> None:
    node = paths.level_dir(paths.replicate_dir(study, 0), 2, "dense_same_size")
    out = tmp_path / "dense.sparse.pt"
    assert main(["export", str(node), "--out", str(out)]) == 0
    model, _ = load_checkpoint(out)
    trained, _ = load_checkpoint(paths.model_file(node))
    assert model.config == trained.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    photos = sorted((demo_data / "test").rglob("*.png"))[:1]
    for source in (out, node):
        target = tmp_path / f"restored_{Path(source).name}"
        assert main(["restore", str(source), *map(str, photos), "--out", str(target), "--no-progress"]) == 0
        assert list(target.rglob("*.png"))


def test_the_mask_explorer_names_a_branch_of_another_network_instead_of_comparing_it(study: Path) -> None:
    """Notebook 04 failed on such a study ("masks disagree on the shape of ...project_in.weight"):
    dense_same_size's mask belongs to a narrower network, so it is listed, not paired with main's;
    refill's and refill_scratch's masks (the ticket's network) are still compared."""
    from mirl.analysis.mask_compare import BRANCH_PAIR, scan_study

    scan = scan_study(study)
    assert scan.other_networks == ["dense_same_size"]
    compared = set(scan.pairs.loc[scan.pairs["kind"] == BRANCH_PAIR, "branch_b"])
    assert compared == {"refill", "refill_scratch"} and "dense_same_size" not in scan.branches
