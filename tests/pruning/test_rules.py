"""mirl.pruning.rules: which tensors are prunable, and density figures over a state dict."""

from __future__ import annotations

import pytest
import torch

from mirl.models import build_model
from mirl.pruning.rules import RULES, density_summary, is_prunable, prunable_names


@pytest.fixture(scope="module")
def tiny_weights() -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    torch.manual_seed(0)
    net = build_model("tiny")
    return net.state_dict(), net.unused_in_forward


def test_upstream_rule_is_every_name_containing_weight(tiny_weights) -> None:
    weights, _ = tiny_weights
    names = prunable_names(weights, "upstream")
    assert names == [n for n in weights if "weight" in n]  # mapping order kept
    assert "prompt1.prompt_param" not in names and all("temperature" not in n for n in names)
    assert any(weights[n].dim() == 1 for n in names)  # LayerNorm scales are included upstream


def test_conv_rule_keeps_used_matrix_weights_only(tiny_weights) -> None:
    """conv: names ending .weight, at least 2-D, and not among the forward pass's unused weights."""
    weights, unused = tiny_weights
    names = set(prunable_names(weights, "conv", unused))
    module_kinds = {n: type(m).__name__ for n, m in build_model("tiny").named_modules()}
    for name in names:
        assert module_kinds[name.rsplit(".", 1)[0]] in ("Conv2d", "Linear"), name
    assert names.isdisjoint(unused) and set(unused) <= set(prunable_names(weights, "upstream"))
    assert all(weights[n].dim() >= 2 for n in names) and "output.weight" in names
    assert names < set(prunable_names(weights, "upstream"))


def test_conv_rule_without_unused_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="unused=model.unused_in_forward"):
        is_prunable("a.weight", torch.zeros(2, 2), "conv")


def test_unknown_rule_names_the_rule_and_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown prunable rule 'dense'.*upstream.*conv"):
        is_prunable("a.weight", torch.zeros(2, 2), "dense")
    assert RULES == ("upstream", "conv")


@pytest.mark.parametrize("rule", ["upstream", "conv"])
def test_density_summary_matches_torch_counts_on_pruned_tiny_model(tiny_weights, rule: str) -> None:
    weights, unused = tiny_weights
    g = torch.Generator().manual_seed(1)
    names = prunable_names(weights, rule, unused)
    pruned = {n: t * (torch.rand(t.shape, generator=g) < 0.3) if n in names else t.clone() for n, t in weights.items()}
    s = density_summary(pruned, rule, unused)
    prunable = sum(pruned[n].numel() for n in names)
    alive = sum(int((pruned[n] != 0).sum()) for n in names)
    total = sum(t.numel() for t in pruned.values())
    assert (s["parameters"], s["prunable"], s["nonzero_prunable"]) == (total, prunable, alive)
    assert s["nonzero_all"] == sum(int((t != 0).sum()) for t in pruned.values())
    assert s["density_prunable"] == pytest.approx(alive / prunable)
    assert s["density_trainable"] == pytest.approx((total - prunable + alive) / total)
    assert 0.2 < s["density_prunable"] < 0.4


def test_density_summary_without_prunable_tensors_is_dense() -> None:
    s = density_summary({"prompt.prompt_param": torch.zeros(3)})
    assert s["prunable"] == 0 and s["density_prunable"] == 1.0 and s["density_trainable"] == 1.0
