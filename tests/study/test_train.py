"""One level of training (mirl.study.train): the published schedule, masked weights stay zero, a
diverging loss stops the level without checkpointing it."""

from __future__ import annotations

import pytest
import torch

from mirl import paths
from mirl.errors import MirlError
from mirl.study.config import study_preset
from mirl.models import build_model
from mirl.pruning import apply_mask, magnitude_prune
from mirl.study.train import TrainingDiverged, TrainSettings, lr_at_epoch, train_level
from tests.conftest import FAST

def test_schedule_matches_published_values():
    published = {0: 0.0, 1: 1.43e-5, 7: 1.00e-4, 14: 2.00e-4, 15: 2.00e-4, 30: 1.90e-4,
                 60: 1.22e-4, 90: 3.77e-5, 110: 4.44e-6, 119: 4.5e-8}
    for epoch, value in published.items():
        got = lr_at_epoch(epoch, 2e-4, 15, 120)
        assert got == pytest.approx(value, rel=0.01, abs=1e-12), epoch


class _Pairs(torch.utils.data.Dataset):
    """Noisy/clean pairs; with ``poison_after`` items read, every later input is NaN."""

    def __init__(self, n: int = 8, poison: bool = False, poison_after: int | None = None) -> None:
        gen = torch.Generator().manual_seed(0)
        self.clean = torch.rand(n, 3, 32, 32, generator=gen)
        self.noisy = (self.clean + 0.1 * torch.randn(n, 3, 32, 32, generator=gen)).clamp(0, 1)
        self.poison_after = 0 if poison else poison_after
        self.reads = 0

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int):
        self.reads += 1
        poisoned = self.poison_after is not None and self.reads > self.poison_after
        return (torch.full_like(self.noisy[i], float("nan")) if poisoned else self.noisy[i]), self.clean[i], 0


def test_pruned_weights_stay_exactly_zero(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = magnitude_prune(model.state_dict(), None, 0.5)
    apply_mask(model, mask)
    cfg = study_preset("smoke", {"epochs": 2, "steps_per_epoch": 3, **FAST})
    train_level(model, mask, _Pairs(), TrainSettings.from_study(cfg), tmp_path, torch.device("cpu"))
    state = model.state_dict()
    for name, keep in mask.items():
        assert torch.count_nonzero(state[name][~keep]) == 0, name
    changed = [n for n in mask if not torch.equal(state[n][mask[n]], before[n][mask[n]])]
    assert len(changed) > len(mask) // 2, "training did not update the surviving weights"
    log = paths.train_log_file(tmp_path).read_text().splitlines()
    assert log[0] == "step,epoch,loss,lr,images_per_s,seconds" and len(log) == 7


def test_deferred_loss_check_never_saves_a_diverged_state(tmp_path, monkeypatch):
    """The CUDA path reads the loss every 10 steps; a NaN must still stop the run before any
    checkpoint holds the diverged weights. Exercised on the CPU by forcing the interval."""
    import mirl.study.train as train_module

    monkeypatch.setattr(train_module, "sync_interval", lambda device: 10)
    cfg = study_preset("smoke", {"checkpoint_every": 4, "epochs": 4, **FAST})
    model = build_model("tiny")
    with pytest.raises(TrainingDiverged, match="loss became nan at level 0, epoch 0, step 1"):
        train_level(model, {}, _Pairs(poison=True), TrainSettings.from_study(cfg), tmp_path, torch.device("cpu"))
    assert not paths.train_state_file(tmp_path).exists(), "a diverged state was checkpointed"


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(tmp_path):
    model = build_model("tiny")
    cfg = study_preset("smoke", {"checkpoint_every": 1, "epochs": 3, **FAST})  # batch 2, 3 steps per epoch: steps 1 and 2 are clean
    with pytest.raises(TrainingDiverged, match=r"loss became nan at level 0, epoch 0, step 3; the last good checkpoint \(.*train_state.pt\)"):
        train_level(model, {}, _Pairs(poison_after=4), TrainSettings.from_study(cfg), tmp_path, torch.device("cpu"))
    saved = torch.load(paths.train_state_file(tmp_path), weights_only=True)
    assert saved["step"] == 2 and [row["step"] for row in saved["log"]] == [1, 2]
    assert all(torch.isfinite(t).all() for t in saved["model"].values())
    assert not list(tmp_path.glob("*.tmp"))


# ---- a train_state.pt that is not this node's (issue 33, case 4) ----------------------------

def _pruned(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("tiny")
    mask = magnitude_prune(model.state_dict(), None, 0.5)
    apply_mask(model, mask)
    return model, mask


def _settings():
    return TrainSettings.from_study(study_preset("smoke", {"epochs": 1, "steps_per_epoch": 3, "checkpoint_every": 1, **FAST}))


NODE = {"replicate": 0, "level": 1, "branch": "random_prune", "seed": 7}


def test_a_saved_state_records_its_node(tmp_path):
    model, mask = _pruned()
    settings = TrainSettings.from_study(study_preset("smoke", {"epochs": 2, "steps_per_epoch": 3, "checkpoint_every": 1, **FAST}))
    with pytest.raises(TrainingDiverged):  # stop after step 2 so that the state stays
        train_level(model, mask, _Pairs(poison_after=4), settings, tmp_path, torch.device("cpu"), level=1, node=NODE)
    assert torch.load(paths.train_state_file(tmp_path), weights_only=True)["node"] == NODE


def test_a_dense_foreign_state_is_not_resumed_without_its_mask(tmp_path):
    """Dense trained weights saved at the node's last step into a pruned node: refused, not
    finished with every pruned weight back (the issue's random_prune node reported 64% dense)."""
    model, mask = _pruned()
    dense = build_model("tiny")
    optimizer = torch.optim.AdamW(dense.parameters())
    torch.save({"model": dense.state_dict(), "optimizer": optimizer.state_dict(), "step": 3, "log": [], "node": NODE},
               paths.train_state_file(tmp_path))
    with pytest.raises(MirlError, match=rf"^{paths.train_state_file(tmp_path)}: \d+ weight\(s\) of .* that this level's mask "
                                        "prunes are non-zero .*delete it to restart the level$"):
        train_level(model, mask, _Pairs(), _settings(), tmp_path, torch.device("cpu"), level=1, node=NODE)


def test_a_state_of_another_node_is_refused(tmp_path):
    model, mask = _pruned()
    other = {**NODE, "branch": "main", "seed": 0}
    optimizer = torch.optim.AdamW(model.parameters())
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": 1, "log": [], "node": other},
               paths.train_state_file(tmp_path))
    with pytest.raises(MirlError, match=r"a training state of another node \(replicate 0, level 1, branch main, seed 0\), not "
                                        r"of this one \(replicate 0, level 1, branch random_prune, seed 7\); delete it"):
        train_level(model, mask, _Pairs(), _settings(), tmp_path, torch.device("cpu"), level=1, node=NODE)


@pytest.mark.parametrize("content", [{"step": 1}, torch.zeros(3), [1, 2], {"model": {}, "optimizer": {}, "step": 1, "log": []}])
def test_a_state_that_is_not_a_training_state_is_one_line(tmp_path, content):
    model, mask = _pruned()
    torch.save(content, paths.train_state_file(tmp_path))
    with pytest.raises(MirlError, match=rf"^{paths.train_state_file(tmp_path)}: not a training state of this mirl \(no valid "
                                        r"[a-z, ]+\); delete it to restart the level$"):
        train_level(model, mask, _Pairs(), _settings(), tmp_path, torch.device("cpu"), level=1, node=NODE)


def test_a_state_of_another_network_is_one_line(tmp_path):
    model, mask = _pruned()
    optimizer = torch.optim.AdamW(model.parameters())
    torch.save({"model": {"weight": torch.zeros(2)}, "optimizer": optimizer.state_dict(), "step": 1, "log": [], "node": NODE},
               paths.train_state_file(tmp_path))
    with pytest.raises(MirlError, match=r"does not fit this level's network .*delete it to restart the level$"):
        train_level(model, mask, _Pairs(), _settings(), tmp_path, torch.device("cpu"), level=1, node=NODE)
