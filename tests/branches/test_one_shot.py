"""mirl.branches.one_shot: the dense trained level 0 pruned by magnitude straight to level k's density."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mirl import paths
from mirl.branches import BranchContext, get_branch
from mirl.models import PromptIR, build_model, save_checkpoint
from mirl.models.checkpoints import CheckpointError

FRACTION = 0.3


@pytest.fixture(scope="module")
def replicate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A replicate folder whose level 0 holds a tiny network (standing in for the dense trained one)."""
    torch.manual_seed(5)
    net = build_model("tiny")
    folder = tmp_path_factory.mktemp("study") / "replicate_0"
    node = paths.level_dir(folder, 0)
    node.mkdir(parents=True)
    save_checkpoint(paths.model_file(node), net)
    return folder, {n: t.detach().clone() for n, t in net.state_dict().items()}


def _context(folder: Path, level: int, scope: str = "global", main_mask: dict | None = None) -> BranchContext:
    cfg = SimpleNamespace(fraction=FRACTION, scope=scope, rule="upstream")
    return BranchContext(cfg=cfg, replicate=folder, replicate_seed=0, level=level, seed=1, main_mask=main_mask or {},
                         main_start={}, unused=frozenset(PromptIR.unused_in_forward))


@pytest.mark.parametrize("level", [1, 3])
def test_global_one_shot_keeps_the_largest_dense_weights_at_the_levels_density(replicate, level: int) -> None:
    folder, dense = replicate
    mask = get_branch("one_shot").mask(_context(folder, level))
    assert mask and all(mask[n].shape == dense[n].shape and mask[n].dtype == torch.bool for n in mask)
    kept = torch.cat([dense[n].abs()[m].flatten() for n, m in mask.items()])
    pruned = torch.cat([dense[n].abs()[~m].flatten() for n, m in mask.items()])
    density = kept.numel() / (kept.numel() + pruned.numel())
    assert density == pytest.approx((1 - FRACTION) ** level, abs=2e-3)
    assert float(kept.min()) >= float(pruned.max())  # one threshold over the whole network


def test_layerwise_one_shot_prunes_every_tensor_to_about_the_levels_density(replicate) -> None:
    folder, dense = replicate
    mask = get_branch("one_shot").mask(_context(folder, 2, scope="layerwise"))
    target = (1 - FRACTION) ** 2
    big = [n for n, m in mask.items() if m.numel() >= 1000]
    assert big
    close = [n for n in big if abs(float(mask[n].float().mean()) - target) < 0.02]
    assert len(close) >= len(big) - 1, "only the output layer may be pruned at another rate"
    for name in big:
        m, w = mask[name], dense[name].abs()
        assert float(w[m].min()) >= float(w[~m].max()), name  # a threshold per tensor


def test_one_shot_ignores_mains_mask_and_deeper_levels_nest(replicate) -> None:
    """The mask comes from level 0's weights alone; a higher level only removes more of them."""
    folder, dense = replicate
    rule = get_branch("one_shot")
    nothing = {n: torch.zeros_like(t, dtype=torch.bool) for n, t in dense.items() if "weight" in n}
    level1, level2 = rule.mask(_context(folder, 1)), rule.mask(_context(folder, 2, main_mask=nothing))
    again = rule.mask(_context(folder, 1, main_mask=nothing))
    assert all(torch.equal(level1[n], again[n]) for n in level1)
    assert all(not bool((level2[n] & ~level1[n]).any()) for n in level1)
    assert sum(int(m.sum()) for m in level2.values()) < sum(int(m.sum()) for m in level1.values())


def test_one_shot_without_a_dense_level_names_the_missing_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "replicate_0"
    with pytest.raises(CheckpointError, match=r"level_0.*model\.pt: no such checkpoint file"):
        get_branch("one_shot").mask(_context(folder, 1))
