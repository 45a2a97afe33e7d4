"""The network: exact keys/shapes and output parity with the published implementation, presets,
and the fast path against the reference path."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from mirl.models import MODEL_PRESETS, PromptIR, build_model, count_parameters
from tests.conftest import FIXTURES


def test_paper_keys_and_shapes_match_published(state_dict_spec):
    model = build_model("paper")
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = {k: shape for k, shape in state_dict_spec["state_dict"]}
    assert got == expected
    assert count_parameters(model) == state_dict_spec["total_parameters"] == 35_592_263
    assert [n for n, _ in model.named_parameters()] == state_dict_spec["named_parameters_order"]
    assert sorted(state_dict_spec["unused_in_forward"]) == sorted(PromptIR.unused_in_forward)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_paper_output_matches_published(paper_recipe, impl):
    model = build_model("paper", impl=impl).eval()
    model.load_state_dict(paper_recipe)
    x = torch.from_numpy(np.load(FIXTURES / "promptir_parity_input.npy"))
    expected = np.load(FIXTURES / "promptir_parity_output.npy")
    with torch.no_grad():
        out = model(x).numpy()
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() < 1e-4


def test_unused_convolutions_get_no_gradient():
    model = build_model("tiny")
    model(torch.rand(1, 3, 32, 32)).mean().backward()
    params = dict(model.named_parameters())
    for name in PromptIR.unused_in_forward:
        assert params[name].grad is None
    assert params["output.weight"].grad is not None


@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_presets_keep_the_architecture(name):
    paper_keys = {k.split(".")[0] for k in build_model("paper").state_dict()}
    keys = {k.split(".")[0] for k in build_model(name).state_dict()}
    assert keys == paper_keys


def test_tiny_forward_backward_batch8_is_fast():
    torch.manual_seed(0)
    model = build_model("tiny")
    x = torch.rand(8, 3, 64, 64)
    model(x).abs().mean().backward()  # warm-up
    start = time.perf_counter()
    out = model(x)
    out.abs().mean().backward()
    elapsed = time.perf_counter() - start
    assert out.shape == x.shape and torch.isfinite(out).all()
    # The issue asks for "well under a second"; a generous bound keeps a shared machine from flaking.
    assert elapsed < 1.0, f"tiny forward+backward took {elapsed:.2f}s"


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_fast_path_equals_reference_forward_and_grads(name):
    torch.manual_seed(1)
    ref = build_model(name, impl="reference")
    fast = build_model(name, impl="fast")
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(2, 3, 48, 64)
    out_ref, out_fast = ref(x), fast(x)
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-5, atol=1e-5)
    out_ref.square().mean().backward()
    out_fast.square().mean().backward()
    for (n, p_ref), (_, p_fast) in zip(ref.named_parameters(), fast.named_parameters()):
        if p_ref.grad is None:
            assert p_fast.grad is None, n
            continue
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_fast_path_runs_in_float64_and_matches_reference():
    """Double precision (gradient and parity checks) runs on the fast path and agrees with the
    reference path within 1e-9, forward and gradients (issue 23, case 10)."""
    torch.manual_seed(2)
    ref = build_model("tiny", impl="reference").double()
    fast = build_model("tiny", impl="fast").double()
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 16, 24, dtype=torch.float64)
    out_ref, out_fast = ref(x), fast(x)
    assert out_fast.dtype == torch.float64
    torch.testing.assert_close(out_fast, out_ref, rtol=0, atol=1e-9)
    out_ref.square().mean().backward()
    out_fast.square().mean().backward()
    for (n, p_ref), (_, p_fast) in zip(ref.named_parameters(), fast.named_parameters()):
        if p_ref.grad is not None:
            torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=0, atol=1e-9, msg=n)


def test_odd_sizes_need_multiples_of_8():
    model = build_model("tiny").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 24, 40)).shape == (1, 3, 24, 40)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible"):
        build_model({"dim": 10, "heads": [1, 2, 4, 3]})
    with pytest.raises(ValueError, match="valid"):
        build_model("huge")
    with pytest.raises(ValueError, match="unknown model setting"):
        build_model({"width": 3})
