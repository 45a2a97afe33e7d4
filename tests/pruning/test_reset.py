"""mirl.pruning.reset: which tensors restart from theta_0 at each level (and the mask applied after)."""

from __future__ import annotations

import pytest
import torch

from mirl.models import build_model
from mirl.pruning.magnitude import magnitude_prune
from mirl.pruning.mask import apply_mask
from mirl.pruning.reset import is_reset, reset_weights


@pytest.mark.parametrize("name,upstream", [("a.conv.weight", True), ("a.norm.body.bias", True),
                                           ("prompt1.prompt_param", False), ("latent.0.attn.temperature", False)])
def test_is_reset_by_name_and_all_resets_everything(name: str, upstream: bool) -> None:
    assert is_reset(name, "upstream") is upstream
    assert is_reset(name, "all") is True


def test_reset_weights_takes_source_or_trained_and_copies() -> None:
    source = {"x.weight": torch.zeros(3), "x.bias": torch.zeros(2), "p.prompt_param": torch.zeros(4)}
    trained = {n: torch.full_like(t, 7.0) for n, t in source.items()}
    start = reset_weights(source, trained, "upstream")
    assert torch.equal(start["x.weight"], source["x.weight"]) and torch.equal(start["x.bias"], source["x.bias"])
    assert torch.equal(start["p.prompt_param"], trained["p.prompt_param"])
    assert all(start[n].data_ptr() not in (source[n].data_ptr(), trained[n].data_ptr()) for n in start)
    start["x.weight"] += 1  # a copy: the sources stay as they were
    assert float(source["x.weight"].sum()) == 0.0
    assert all(torch.equal(t, source[n]) for n, t in reset_weights(source, trained, "all").items())


def test_reset_then_mask_gives_theta0_where_kept_and_zero_elsewhere() -> None:
    """A level's start: theta_0 exactly where the mask keeps, exactly zero where it prunes;
    prompts and temperatures keep their trained values."""
    torch.manual_seed(0)
    net = build_model("tiny")
    theta0 = {n: t.clone() for n, t in net.state_dict().items()}
    trained = {n: t + torch.randn_like(t) for n, t in theta0.items()}
    mask = magnitude_prune(trained, None, 0.5)
    net.load_state_dict(reset_weights(theta0, trained, "upstream"))
    apply_mask(net, mask)
    state = net.state_dict()
    for name, t in state.items():
        if name in mask:
            assert torch.equal(t[mask[name]], theta0[name][mask[name]]), name
            assert bool((t[~mask[name]] == 0).all()), name
        elif is_reset(name, "upstream"):
            assert torch.equal(t, theta0[name]), name
        else:
            assert torch.equal(t, trained[name]), name
    assert any(not is_reset(n, "upstream") for n in state)  # the prompts were exercised


def test_random_reinit_keeps_the_mask() -> None:
    """Fresh weights reset in place of theta_0 still carry exactly the ticket's zero pattern."""
    torch.manual_seed(0)
    net = build_model("tiny")
    theta0 = {n: t.clone() for n, t in net.state_dict().items()}
    mask = magnitude_prune(theta0, None, 0.6)
    torch.manual_seed(99)
    fresh = build_model("tiny").state_dict()
    net.load_state_dict(reset_weights(fresh, theta0, "upstream"))
    apply_mask(net, mask)
    state = net.state_dict()
    for name, m in mask.items():
        assert torch.equal(state[name] != 0, m & (fresh[name] != 0)), name
    assert any(not torch.equal(state[n][mask[n]], theta0[n][mask[n]]) for n in mask if mask[n].any())
