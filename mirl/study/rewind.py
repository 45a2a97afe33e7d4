"""Rewinding as Frankle et al. (ICML 2020, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis") and open_lth do it: a rewound level resumes the dense run at step t, it does not
restart it.

Main's dense level snapshots, after ``rewind_steps`` = t steps, its weights theta_t
(``rewind.pt``) and its optimiser state and step (``rewind_state.pt``). Every level k >= 1 of
main and of every branch then starts from theta_t (its own mask applied) *at step t*: the AdamW
moments saved at step t, the learning rate of step t + 1's epoch, and the remaining T - t steps
of the level's T, in the data order of those steps. Only a level's weights differ between the
ticket and its controls (``random_reinit`` draws fresh weights but keeps the step and optimiser
state, so the controls differ from the ticket in one thing).

Example:
    >>> rewind_start(study_preset("smoke"), Path("/no/replicate"), 1) is None   # reset=init: every level starts at step 0
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from mirl import paths
from mirl.errors import MirlError
from mirl.fileio import atomic_torch_save
from mirl.models import load_checkpoint, save_checkpoint
from mirl.study.config import StudyConfig, study_preset  # noqa: F401  (study_preset: the example)
from mirl.study.distributed import DistInfo

Hook = Callable[[int, torch.nn.Module, torch.optim.Optimizer], None]


def snapshot_hook(cfg: StudyConfig, replicate: Path, dist: DistInfo) -> Hook | None:
    """For main's dense level of a rewinding study: the ``on_step`` hook that saves theta_t and
    the optimiser state at step ``rewind_steps`` (``None``: not rewinding, or not rank 0). With
    ``rewind_steps=0`` the rewind point is theta_0 with a fresh optimiser, written at once."""
    if cfg.reset != "rewind" or not dist.is_main:
        return None
    weights, state = paths.rewind_weights(replicate), paths.rewind_state(replicate)
    if cfg.rewind_steps == 0 and not (weights.exists() and state.exists()):
        model, _ = load_checkpoint(paths.init_weights(replicate))
        atomic_torch_save({"step": 0, "optimizer": None}, state)
        save_checkpoint(weights, model, metadata={"theta": 0})

    def hook(step: int, net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if step == cfg.rewind_steps and not (weights.exists() and state.exists()):
            atomic_torch_save({"step": step, "optimizer": optimizer.state_dict()}, state)  # first: rewind.pt marks both done
            save_checkpoint(weights, net, metadata={"theta": step})

    return hook


def rewind_start(cfg: StudyConfig, replicate: Path, level: int, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
    """Where a node of ``level`` begins training: ``{"step": t, "optimizer": state or None}`` for
    a pruned level of a rewinding study, ``None`` (step 0, a fresh optimiser) otherwise."""
    if cfg.reset != "rewind" or level == 0:
        return None
    path = paths.rewind_state(replicate)
    if not path.is_file():
        raise MirlError(f"{path} is missing: this rewinding study was begun by an older mirl, whose rewound levels restarted "
                        "the schedule at step 0; run it again in a new --out folder (or delete its pruned levels and rewind.pt)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise MirlError(f"{path}: unreadable rewind point ({str(exc).splitlines()[0][:100]}); delete the replicate's level "
                        "folders, rewind.pt and this file to train it again") from None
    if not isinstance(state, dict) or state.get("step") != cfg.rewind_steps:
        raise MirlError(f"{path}: not the rewind point of step {cfg.rewind_steps} of this study; delete the replicate's level "
                        "folders, rewind.pt and this file to train it again")
    return state


__all__ = ["rewind_start", "snapshot_hook"]
