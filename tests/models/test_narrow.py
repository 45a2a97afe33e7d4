"""mirl.models.narrow: hand-picked dead channels on a tiny network, the plan that keeps the
others, the narrowed network against the masked one, and NarrowAttention against a masked
Attention built by hand. tests/branches/test_refill.py covers refill masks and damaged widths."""

from __future__ import annotations

import pytest
import torch

from mirl.errors import MirlError
from mirl.models import build_model, count_parameters
from mirl.models.narrow import (
    NarrowAttention,
    build_narrow_model,
    channel_units,
    is_narrowed,
    narrow_model,
    plan_narrowing,
)
from mirl.models.promptir import Attention, TransformerBlock
from mirl.pruning.mask import full_mask

FFN, QUERY, UP = "encoder_level1.0.ffn.hidden", "latent.0.attn.query", "up4_3.channels"
FFN_DEAD, QUERY_DEAD, UP_DEAD = [0, 5, 7], [0, 1, 2, 3, 32], [1, 4]


@pytest.fixture(scope="module")
def masked() -> torch.nn.Module:
    """A tiny network with hand-picked dead channels: FFN hidden 0, 5, 7 of the first block
    (project_out columns), latent query channels 0-3 (head 0) and 32 (head 1), and the
    upsampled channels 1 and 4 of up4_3 (reduce_chan_level3's columns)."""
    torch.manual_seed(0)
    net = build_model("tiny").eval()
    with torch.no_grad():
        net.encoder_level1[0].ffn.project_out.weight[:, FFN_DEAD] = 0
        net.latent[0].attn.project_out.weight[:, QUERY_DEAD] = 0
        net.reduce_chan_level3.weight[:, UP_DEAD] = 0
    return net


def test_the_plan_keeps_the_live_channels(masked: torch.nn.Module) -> None:
    """Live channels kept; every head keeps as many as the fullest head, dead ones filled lowest index first."""
    plan = plan_narrowing(masked)
    hidden = masked.encoder_level1[0].ffn.project_out.in_channels
    assert plan.keep[FFN] == [c for c in range(hidden) if c not in FFN_DEAD] and plan.widths[FFN] == hidden - 3
    assert masked.latent[0].attn.num_heads == 2 and masked.latent[0].attn.qkv.in_channels == 64
    # head 0 has 28 live channels, head 1 has 31: head 0 keeps 3 of its dead ones (0, 1, 2) too
    assert plan.keep[QUERY] == [0, 1, 2, *range(4, 32), *range(33, 64)] and plan.widths[QUERY] == 31
    assert plan.keep[UP] == [c for c in range(16) if c not in UP_DEAD] and plan.widths[UP] == 14
    others = {u.name: u.per_head for u in plan.units if u.name not in (FFN, QUERY, UP)}
    assert {n: plan.widths[n] for n in others} == others  # nothing else is dead in a random network


def test_narrowed_network_computes_the_masked_one_with_fewer_weights(masked: torch.nn.Module) -> None:
    small = narrow_model(masked)
    assert is_narrowed(small) and not is_narrowed(masked)
    dim, d_latent, up_in = masked.config.dim, 8 * masked.config.dim, masked.up4_3.body[0].in_channels
    removed = (3 * (2 * dim + 2 * 9 + dim)  # FFN: 2 project_in rows, 2 depth-wise filters, 1 project_out column
               + 2 * (d_latent + 9 + d_latent)  # one query per head: a qkv row, its filter, a project_out column
               + 2 * (4 * up_in * 9 + masked.reduce_chan_level3.out_channels))  # 4 conv outputs + 1 reduce column
    assert count_parameters(masked) - count_parameters(small) == removed
    assert small.latent[0].attn.nulls == 0  # no key/value pair was removed
    for impl in ("fast", "reference"):
        masked.set_impl(impl)
        small.set_impl(impl)
        x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            assert float((small(x) - masked(x)).abs().max()) < 1e-5, impl
    masked.set_impl("fast")


def test_plan_apply_narrows_a_mask_to_the_networks_shapes(masked: torch.nn.Module) -> None:
    plan = plan_narrowing(masked)
    narrowed = plan.build()
    mask = full_mask(masked.state_dict(), "upstream", masked.unused_in_forward)
    applied = plan.apply({**mask, "not.a.tensor": torch.ones(3, dtype=torch.bool)})
    shapes = {n: t.shape for n, t in narrowed.state_dict().items()}
    assert {n: m.shape for n, m in applied.items() if n in mask} == {n: shapes[n] for n in mask}
    assert all(bool(m.all()) for m in applied.values()) and applied["not.a.tensor"].shape == (3,)
    assert plan.parameters() == count_parameters(narrowed)


def test_narrowing_keeps_mode_and_takes_an_impl(masked: torch.nn.Module) -> None:
    masked.train()
    try:
        small = narrow_model(masked, impl="reference")
        assert small.training and small.impl == "reference"
    finally:
        masked.eval()
    again = narrow_model(small)  # narrowed already: a copy
    assert again is not small and again.narrow_widths == small.narrow_widths
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), small.state_dict().values()))


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_narrow_attention_equals_an_attention_with_the_dropped_channels_zeroed(impl: str) -> None:
    """Per head (2 heads of 4): queries 0, 2, 3 and key/value pairs 1, 3 kept, the rest zero in the
    full attention; the narrow one holds only the kept rows and columns."""
    torch.manual_seed(1)
    d, heads, per = 8, 2, 4
    full = Attention(d, heads, bias=False)
    q_keep, kv_keep = [0, 2, 3], [1, 3]
    q_idx = [h * per + c for h in range(heads) for c in q_keep]
    kv_idx = [h * per + c for h in range(heads) for c in kv_keep]
    with torch.no_grad():
        full.temperature.copy_(torch.tensor([[[0.7]], [[1.6]]]))
        full.project_out.weight[:, [i for i in range(d) if i not in q_idx]] = 0
        for j in (j for j in range(d) if j not in kv_idx):
            full.qkv.weight[d + j] = 0
            full.qkv.weight[2 * d + j] = 0
    narrow = NarrowAttention(d, heads, query=3, keyvalue=2, bias=False)
    rows = q_idx + [d + j for j in kv_idx] + [2 * d + j for j in kv_idx]
    with torch.no_grad():
        narrow.temperature.copy_(full.temperature)
        narrow.qkv.weight.copy_(full.qkv.weight[rows])
        narrow.qkv_dwconv.weight.copy_(full.qkv_dwconv.weight[rows])
        narrow.project_out.weight.copy_(full.project_out.weight[:, q_idx])
    full.impl = narrow.impl = impl
    assert narrow.nulls == 2
    x = torch.randn(1, d, 6, 10, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert float((narrow(x) - full(x)).abs().max()) < 1e-5


def test_one_unit_per_attention_ffn_and_upsample() -> None:
    net = build_model("tiny")
    blocks = [n for n, m in net.named_modules() if isinstance(m, TransformerBlock)]
    units = channel_units(net.config)
    assert len(units) == 3 * len(blocks) + 2
    assert [u.name for u in units[-2:]] == ["up4_3.channels", "up3_2.channels"]
    assert {u.name.rsplit(".", 1)[0] for u in units[:-2]} == {f"{b}.{p}" for b in blocks for p in ("ffn", "attn")}


def test_dead_uses_the_zero_slices_of_a_state() -> None:
    """A keyvalue channel is dead only when its key and its value are both zero."""
    net = build_model("tiny")
    unit = next(u for u in channel_units(net.config) if u.name == "encoder_level1.0.attn.keyvalue")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    d = unit.channels
    state["encoder_level1.0.attn.qkv.weight"][d + 2] = 0  # key 2 only
    state["encoder_level1.0.attn.qkv.weight"][d + 5] = 0  # key 5 ...
    state["encoder_level1.0.attn.qkv_dwconv.weight"][2 * d + 5] = 0  # ... and value 5 (its depth-wise filter)
    assert unit.dead(state).nonzero().flatten().tolist() == [5]


@pytest.mark.parametrize("width", [0, True, 2.0])
def test_widths_that_are_not_whole_channel_counts_are_refused(width: object) -> None:
    net = build_model("tiny")
    hidden = net.encoder_level1[0].ffn.project_out.in_channels
    with pytest.raises(MirlError, match=rf"^ckpt\.pt: narrowed width {FFN} = {width!r} is not a whole number from 1 to {hidden}; "
                                        "the file is damaged"):
        build_narrow_model(net.config, {FFN: width}, source="ckpt.pt")  # type: ignore[dict-item]
