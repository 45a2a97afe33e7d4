"""Magnitude pruning reproduces the published MIR-L pruning counts exactly
(tests/fixtures/pruning_reference.json, three rounds of 20%, global and layer-wise)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mirl.models import PromptIR, build_model
from mirl.pruning.magnitude import magnitude_prune, percentile_linear
from mirl.pruning.rules import prunable_names
from tests.conftest import FIXTURES


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_reproduces_published_pruning_counts(paper_recipe, scope):
    reference = json.loads((FIXTURES / "pruning_reference.json").read_text())[scope]
    order = [n for n, _ in build_model("paper").named_parameters()]
    prunable = set(prunable_names(paper_recipe))
    weights = {k: v.clone() for k, v in paper_recipe.items()}
    mask = None
    for expected in reference:
        r = expected["round"]
        perturbed = {}
        for i, name in enumerate(order):
            noise = torch.randn(weights[name].shape, generator=torch.Generator().manual_seed(50000 + 1000 * (r - 1) + i)) * 0.01
            if name in prunable:
                noise = noise * (weights[name] != 0)
            perturbed[name] = weights[name] + noise
        mask = magnitude_prune(perturbed, mask, 0.2, scope=scope)
        assert sum(m.numel() for m in mask.values()) == expected["prunable_total"]
        assert sum(int(m.sum()) for m in mask.values()) == expected["kept_total"]
        kept = {n: int(m.sum()) for n, m in mask.items()}
        assert kept == dict(expected["kept_per_tensor"])
        weights = {n: paper_recipe[n] * mask[n] if n in mask else paper_recipe[n].clone() for n in paper_recipe}


def test_percentile_matches_numpy_bit_for_bit():
    rng = np.random.default_rng(0)
    for _ in range(500):
        values = np.abs(rng.standard_normal(int(rng.integers(1, 5000))).astype(np.float32))
        q = float(rng.choice([0.0, 10.0, 20.0, 36.0, 50.0, 99.9, 100.0]))
        assert float(percentile_linear(torch.from_numpy(values), q)) == float(np.percentile(values, q))


def test_radix_selection_equals_full_sort():
    from mirl.pruning.magnitude import select_ranks

    gen = torch.Generator().manual_seed(0)
    values = torch.cat([torch.rand(400_000, generator=gen) ** 4, torch.full((1000,), 0.25), torch.zeros(5000)])
    ordered = torch.sort(values).values
    ranks = [0, 4999, 5000, 123_456, 200_000, values.numel() - 1]
    assert [float(v) for v in select_ranks(values, ranks)] == [float(ordered[r]) for r in ranks]
    with_zeros = torch.cat([torch.zeros(300_000), values[values > 0]])
    assert float(percentile_linear(with_zeros, 20.0, skip_zeros=True)) == float(np.percentile(values[values > 0].numpy(), 20.0))


def test_strictly_smaller_is_pruned_and_ties_survive():
    w = {"a.weight": torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0])}
    assert magnitude_prune(w, None, 0.2)["a.weight"].all()


def test_layerwise_prunes_output_layer_at_half_rate():
    torch.manual_seed(0)
    w = {"x.weight": torch.randn(1000), "output.weight": torch.randn(1000)}
    mask = magnitude_prune(w, None, 0.2, scope="layerwise")
    assert int(mask["x.weight"].sum()) == 800
    assert int(mask["output.weight"].sum()) == 900


def test_conv_rule_skips_layernorm_and_unused():
    state = build_model("tiny").state_dict()
    mask = magnitude_prune(state, None, 0.5, rule="conv", unused=PromptIR.unused_in_forward)
    assert "encoder_level1.0.norm1.body.weight" not in mask
    assert "chnl_reduce1.weight" not in mask
    assert "prompt1.linear_layer.weight" in mask and "output.weight" in mask


def test_bad_arguments():
    w = {"a.weight": torch.ones(3)}
    with pytest.raises(ValueError, match="fraction"):
        magnitude_prune(w, None, 1.5)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(w, None, 0.2, scope="channel")
