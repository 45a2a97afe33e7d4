"""mirl.pruning.mask: name-keyed masks, applying them, the sparsity report, saving and loading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from mirl.errors import MirlError
from mirl.models import build_model
from mirl.pruning.mask import (MaskApplier, check_mask_fits, count_kept, full_mask, load_mask, mask_gradients,
                               masks_equal, save_mask, sparsity_report, write_sparsity_report)
from mirl.pruning.rules import prunable_names


def _random_mask(weights: dict[str, torch.Tensor], density: float = 0.3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(weights[n].shape, generator=g) < density for n in prunable_names(weights)}


@pytest.fixture()
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("tiny")


def test_full_mask_keeps_every_prunable_weight(tiny) -> None:
    weights = tiny.state_dict()
    mask = full_mask(weights, "conv", tiny.unused_in_forward)
    assert list(mask) == prunable_names(weights, "conv", tiny.unused_in_forward)
    assert all(m.dtype == torch.bool and bool(m.all()) and m.shape == weights[n].shape for n, m in mask.items())


def test_save_load_round_trip(tmp_path: Path, tiny) -> None:
    weights = tiny.state_dict()
    mask = _random_mask(weights)
    save_mask(tmp_path / "mask.pt", mask)
    back = load_mask(tmp_path / "mask.pt", expected={n: weights[n] for n in mask})
    assert masks_equal(mask, back) and list(back) == list(mask)
    assert all(t.dtype == torch.bool and t.device.type == "cpu" for t in back.values())
    assert not [p for p in tmp_path.iterdir() if p.name != "mask.pt"]  # no temporary file left


def test_save_mask_stores_bools_from_float_masks(tmp_path: Path) -> None:
    save_mask(tmp_path / "m.pt", {"w": torch.tensor([1.0, 0.0, 1.0])})
    assert load_mask(tmp_path / "m.pt")["w"].tolist() == [True, False, True]


def test_load_mask_refuses_damaged_file_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken_mask.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(MirlError, match=r"broken_mask\.pt: not a readable mask file"):
        load_mask(path)


def test_load_mask_refuses_non_bool_contents_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(MirlError, match=r"weights\.pt: not a mask \(expected a dict of bool tensors\)"):
        load_mask(path)


def test_check_mask_fits_names_missing_and_unknown_tensors() -> None:
    mask = {"a": torch.ones(2, dtype=torch.bool), "zzz": torch.ones(1, dtype=torch.bool)}
    expected = {"a": torch.zeros(2), "b": torch.zeros(3)}
    with pytest.raises(MirlError, match=r"m\.pt: the mask does not fit the network: it lacks 1 tensor\(s\) \(e\.g\. b\); "
                                        r"it names 1 unknown tensor\(s\) \(e\.g\. zzz\); remove the file"):
        check_mask_fits(mask, expected, "m.pt")
    check_mask_fits({"a": torch.ones(2, dtype=torch.bool)}, {"a": torch.zeros(2)}, "m.pt")  # fits: no error


def test_load_mask_with_expected_refuses_a_wrong_shape_naming_it(tmp_path: Path, tiny) -> None:
    """A mask of another width would be broadcast by copy_: refused, naming tensor and both shapes."""
    weights = tiny.state_dict()
    mask = full_mask(weights)
    mask["output.weight"] = torch.ones(3, 1, 3, 3, dtype=torch.bool)
    save_mask(tmp_path / "mask.pt", mask)
    expected = {n: weights[n] for n in mask}
    shape = tuple(weights["output.weight"].shape)
    message = f"mask.pt: the mask does not fit the network: output.weight has shape (3, 1, 3, 3), the network's is {shape}"
    with pytest.raises(MirlError, match=re.escape(message)):
        load_mask(tmp_path / "mask.pt", expected=expected)


def test_sparsity_report_matches_torch_counts(tiny) -> None:
    weights = tiny.state_dict()
    mask = _random_mask(weights)
    report = sparsity_report(mask, weights, run="x")
    kept = sum(int(torch.count_nonzero(m)) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    params = sum(t.numel() for t in weights.values())
    assert report["run"] == "x"
    assert report["prunable"] == {"kept": kept, "total": total, "density": pytest.approx(kept / total)}
    assert report["trainable"]["kept"] == params - total + kept and report["trainable"]["total"] == params
    assert report["tensors"]["output.weight"] == {"kept": int(mask["output.weight"].sum()), "total": mask["output.weight"].numel()}
    assert count_kept(mask) == kept and count_kept(mask, ["output.weight"]) == int(mask["output.weight"].sum())


def test_sparsity_report_lists_empty_used_tensors_only(tiny) -> None:
    """An emptied used tensor is layer collapse; an emptied unused one is harmless."""
    weights = tiny.state_dict()
    mask = full_mask(weights)
    unused = tiny.unused_in_forward
    mask["output.weight"] = torch.zeros_like(mask["output.weight"])
    mask[unused[0]] = torch.zeros_like(mask[unused[0]])
    assert sparsity_report(mask, weights, unused)["empty_tensors"] == ["output.weight"]


def test_write_sparsity_report_writes_the_returned_json(tmp_path: Path, tiny) -> None:
    weights = tiny.state_dict()
    report = write_sparsity_report(tmp_path / "sparsity_report.json", _random_mask(weights), weights, level=2)
    assert json.loads((tmp_path / "sparsity_report.json").read_text()) == json.loads(json.dumps(report))


def test_applier_zeroes_pruned_weights_and_gradients_only(tiny) -> None:
    params = dict(tiny.named_parameters())
    mask = {"output.weight": torch.rand(params["output.weight"].shape) < 0.5,
            "patch_embed.proj.weight": torch.rand(params["patch_embed.proj.weight"].shape) < 0.5}
    before = {n: params[n].detach().clone() for n in mask}
    MaskApplier(tiny, mask).weights()
    for n, m in mask.items():
        assert torch.equal(params[n].detach(), before[n] * m), n
    tiny(torch.rand(1, 3, 16, 16)).square().mean().backward()
    grads = {n: p.grad.clone() for n, p in params.items() if p.grad is not None}
    mask_gradients(tiny, mask)
    for n, p in params.items():
        if p.grad is None:
            continue
        expected = grads[n] * mask[n] if n in mask else grads[n]
        assert torch.equal(p.grad, expected), n


def test_applier_refuses_names_that_are_not_parameters(tiny) -> None:
    with pytest.raises(KeyError, match="no_such.weight"):
        MaskApplier(tiny, {"no_such.weight": torch.ones(3, dtype=torch.bool)})


def test_masks_equal_compares_names_and_bits() -> None:
    a = {"w": torch.tensor([True, False])}
    assert masks_equal(a, {"w": torch.tensor([True, False])})
    assert not masks_equal(a, {"w": torch.tensor([True, True])})
    assert not masks_equal(a, {"v": torch.tensor([True, False])})
