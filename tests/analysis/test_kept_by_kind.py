"""Weights kept per kind of tensor (mirl.analysis.kept_by_kind): kinds read from the network's modules, and
the table against the masks themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from mirl import paths
from mirl.analysis.kept_by_kind import KINDS, kept_by_kind, tensor_kind, tensor_kinds


@pytest.mark.parametrize("name, module, kind", [
    ("a.weight", nn.Conv2d(8, 16, 3), "3x3 convolution"),
    ("a.weight", nn.Conv2d(8, 16, 1), "1x1 convolution"),
    ("a.weight", nn.Conv2d(8, 8, 3, groups=8), "depthwise convolution"),
    ("a.weight", nn.Conv2d(8, 8, 3, groups=2), "3x3 convolution"),   # grouped, not depthwise
    ("a.weight", nn.Linear(4, 4), "linear"),
    ("a.bias", nn.Linear(4, 4), "other"),
    ("blk.norm1.body.weight", None, "normalisation scale"),
    ("prompt1.prompt_param", None, "other"),
])
def test_tensor_kind(name, module, kind) -> None:
    assert tensor_kind(name, module) == kind


def test_every_parameter_the_tiny_network_uses_has_a_kind() -> None:
    from mirl.models import build_model

    kinds = tensor_kinds("tiny")
    net = build_model("tiny")
    assert set(kinds) == {n for n, _ in net.named_parameters()} - set(net.unused_in_forward)
    assert set(kinds.values()) <= set(KINDS)
    assert {"3x3 convolution", "depthwise convolution", "1x1 convolution", "linear", "normalisation scale"} <= set(kinds.values())


def test_table_counts_what_the_masks_keep(smoke_run: Path) -> None:
    from mirl.analysis.results import load_config
    from mirl.pruning import load_mask

    table = kept_by_kind(smoke_run)
    kinds = tensor_kinds(load_config(smoke_run)["model"])
    replicate = paths.replicate_dir(smoke_run, 0)
    levels = paths.level_numbers(replicate)
    assert sorted(table["level"].unique()) == levels and len(levels) >= 2
    for level in levels:
        mask = load_mask(paths.mask_file(paths.level_dir(replicate, level)))
        expected: dict[str, list[int]] = {}
        for name, keep in mask.items():
            if name not in kinds:  # never used by the forward pass: not listed
                continue
            kept, total = expected.setdefault(kinds[name], [0, 0])
            expected[kinds[name]] = [kept + int(keep.sum()), total + keep.numel()]
        rows = table[table["level"] == level].set_index("kind")
        assert {k: [int(rows.loc[k, "kept"]), int(rows.loc[k, "prunable"])] for k in rows.index} == expected
        assert (rows["fewest kept (%)"] <= rows["kept (%)"] + 1e-9).all()
    assert table[table["level"] == 0]["kept (%)"].eq(100.0).all()
