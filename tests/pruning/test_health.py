"""mirl.pruning.health: masks that empty a tensor or cut a normalisation scale, and the rule a
layer-wise study prunes with."""

from __future__ import annotations

import json

import pytest
import torch

from mirl.models import build_model
from mirl.pruning.health import is_norm_scale, mask_warnings, rule_warning, study_mask_warnings
from mirl.pruning.magnitude import magnitude_prune
from mirl.pruning.mask import sparsity_report
from mirl.study.config import study_preset


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = build_model("tiny")
    return net.state_dict(), net.unused_in_forward


@pytest.mark.parametrize("preset,overrides", [("quickstart", {}), ("evidence", {}), ("smoke", {"scope": "layerwise"})])
def test_layerwise_scope_with_the_default_rule_never_prunes_a_1d_tensor(tiny, preset, overrides):
    """Every level of a layer-wise study (its own fraction and rounds) keeps every 1-D tensor
    (LayerNorm scales and biases) whole: they are not even in the mask."""
    weights, unused = tiny
    cfg = study_preset(preset, overrides)
    assert cfg.scope == "layerwise" and cfg.rule == "conv"
    previous = None
    for _level in range(1, cfg.rounds + 1):
        mask = magnitude_prune(weights, previous, cfg.fraction, cfg.scope, cfg.rule, unused)
        assert not [n for n in mask if weights[n].dim() < 2]
        report = sparsity_report(mask, weights, unused)
        assert mask_warnings(report) == [] and report["prunable"]["density"] < 1
        previous = mask


def test_global_scope_keeps_mirls_rule_and_the_paper_its_hash():
    from mirl.study.config import config_hash

    assert study_preset("paper").rule == study_preset("smoke").rule == "upstream"
    assert study_preset("paper", {"rule": "upstream"}).rule == "upstream"
    assert config_hash(study_preset("paper")) == config_hash(study_preset("paper", {"rule": "upstream"})) \
        == config_hash(study_preset("paper", {"rule": "auto"}))
    # an explicit upstream rule under layer-wise scope is what it says (and is warned about)
    assert study_preset("quickstart", {"rule": "upstream"}).rule == "upstream"
    assert rule_warning("upstream", "layerwise") and rule_warning("conv", "layerwise") is None


def test_layerwise_upstream_cuts_the_norm_scales_and_is_flagged(tiny):
    """The issue's case: 70% per tensor under the upstream rule leaves 3 of 8 channels of a norm
    (trained scales differ from their initial 1s, as after level 0)."""
    weights, unused = tiny
    gen = torch.Generator().manual_seed(0)
    weights = {n: t + 0.1 * torch.randn(t.shape, generator=gen) for n, t in weights.items()}
    mask = magnitude_prune(weights, None, 0.7, "layerwise", "upstream", unused)
    scale = "encoder_level1.0.norm1.body.weight"
    assert int(mask[scale].sum()) < weights[scale].numel() / 2
    lines = mask_warnings(sparsity_report(mask, weights, unused))
    assert len(lines) == 1 and "normalisation scale(s) lost more than half" in lines[0]
    n_norms = sum(is_norm_scale(n) for n in weights)
    assert lines[0].startswith(f"{n_norms} normalisation scale(s)")


def test_an_empty_tensor_and_a_halved_norm_are_both_flagged_per_node(tiny, tmp_path):
    weights, unused = tiny
    mask = magnitude_prune(weights, None, 0.2, "global", "upstream", unused)
    mask["output.weight"][:] = False
    scale = "encoder_level1.0.norm1.body.weight"
    mask[scale][:] = False
    mask[scale][0] = True
    node = tmp_path / "study" / "replicate_0" / "level_2" / "main"
    node.mkdir(parents=True)
    (node / "sparsity_report.json").write_text(json.dumps(sparsity_report(mask, weights, unused)))
    lines = study_mask_warnings(tmp_path / "study")
    assert len(lines) == 2 and all(line.startswith("replicate 0, level 2, main: ") for line in lines)
    assert "output.weight" in lines[0] and f"{scale} keeps 1 of {weights[scale].numel()}" in lines[1]
    # exactly half kept is not flagged
    mask[scale][: weights[scale].numel() // 2] = True
    mask["output.weight"][:] = True
    assert mask_warnings(sparsity_report(mask, weights, unused)) == []
