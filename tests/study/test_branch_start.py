"""A branch of level k starts beside main's level k, once main's level k - 1 is trained: main's
mask of level k is made once, by whichever starts first, and both train under it; the stability
copy, which reads main's trained level k, still waits for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mirl import paths
from mirl.errors import MirlError
from mirl.pruning.mask import load_mask, save_mask
from tests.conftest import FAST

SETTINGS = {"rounds": 1, "branches": "random_reinit,stability", **FAST}


def _run(demo_data: Path, out: Path, nodes=None) -> Path:
    from mirl.study.lottery import run_study

    return run_study("smoke", {"data": str(demo_data), **SETTINGS}, out=out, nodes=nodes)


def test_a_branch_trains_before_main_of_its_level_under_the_mask_main_then_uses(demo_data: Path, tmp_path: Path) -> None:
    from mirl.models import load_checkpoint
    from mirl.study.config import study_preset
    from mirl.study.lottery import main_mask, study_nodes
    from mirl.study.stale import stale_nodes

    study = _run(demo_data, tmp_path, nodes=[(0, 0, "main")])
    replicate = paths.replicate_dir(study, 0)
    main_1 = paths.level_dir(replicate, 1)
    _run(demo_data, tmp_path, nodes=[(0, 1, "random_reinit")])
    assert paths.is_finished(paths.level_dir(replicate, 1, "random_reinit")) and not paths.is_finished(main_1)
    saved = paths.mask_file(main_1).read_bytes()  # saved by the branch, into main's level folder
    cfg = study_preset("smoke", {"data": str(demo_data), **SETTINGS})
    theta0 = load_checkpoint(paths.init_weights(replicate))[0].state_dict()
    pruned = main_mask(cfg, replicate, 1, theta0)  # what main would have pruned on its own
    branch_mask = load_mask(paths.mask_file(paths.level_dir(replicate, 1, "random_reinit")))
    assert all(torch.equal(branch_mask[n], m) for n, m in pruned.items()) and set(branch_mask) == set(pruned)
    with pytest.raises(MirlError, match="reads main's trained level 1"):
        _run(demo_data, tmp_path, nodes=[(0, 1, "stability")])
    assert stale_nodes(study, study_nodes(cfg)) == {}  # a branch ahead of main's level is not stale
    _run(demo_data, tmp_path)
    assert paths.is_finished(main_1) and paths.mask_file(main_1).read_bytes() == saved  # main trained under it, untouched
    assert stale_nodes(study, study_nodes(cfg)) == {}


def test_a_mask_already_saved_for_main_is_the_one_both_train_under(demo_data: Path, tmp_path: Path) -> None:
    """Of two processes pruning a level at once the first file wins: neither replaces it, and
    both read it back."""
    study = _run(demo_data, tmp_path, nodes=[(0, 0, "main")])
    replicate = paths.replicate_dir(study, 0)
    dense = load_mask(paths.mask_file(paths.level_dir(replicate, 0)))
    first = {n: torch.ones_like(m) for n, m in dense.items()}  # another process's mask: keep everything
    save_mask(paths.mask_file(paths.level_dir(replicate, 1)), first, exclusive=True)
    _run(demo_data, tmp_path, nodes=[(0, 1, "random_reinit"), (0, 1, "main")])
    for branch in ("main", "random_reinit"):
        mask = load_mask(paths.mask_file(paths.level_dir(replicate, 1, branch)))
        assert all(bool(m.all()) for m in mask.values()), branch

