"""PromptIR's internal channels, and networks whose tensors are narrowed to the channels that work.

PromptIR's residual streams (the width every block adds into, the skip connections) are fixed by
the architecture; its *internal* dimensions can be removed channel by channel without touching
any other module. A :class:`ChannelUnit` is one such dimension:

* ``hidden``: the gated feed-forward's hidden channels. Channel ``c`` is ``project_in`` rows ``c``
  and ``c + hidden`` (the two halves that the gate multiplies), the same two depth-wise filters,
  and ``project_out`` column ``c``.
* ``query``: attention channel ``i`` of the queries (within its head). In the transposed
  attention the head's matrix is ``channels x channels``: row ``i`` comes from query ``i`` and
  the attended mix of values lands in output channel ``i``, so a query channel owns ``qkv`` row
  ``i``, its depth-wise filter and ``project_out`` column ``i``.
* ``keyvalue``: attention channel ``j`` of the keys *and* values (within its head): key ``j`` is
  column ``j`` of the head's matrix and weighs value ``j``, so they go together (``qkv`` rows
  ``dim + j`` and ``2 dim + j`` and their depth-wise filters).
* ``upsample``: the channels that ``up4_3`` and ``up3_2`` make before their pixel shuffle (4
  convolution outputs each) and that only ``reduce_chan_level3``/``2`` read (one input column).

A channel is *dead* when a zero tensor slice proves that it adds exactly nothing: its consumer's
column is zero, or (where the channel is multiplied or bias-free) its producer's rows are. A
removed key/value pair is special: its key is zero, so its score is 0 and ``exp(0)`` stays in the
softmax's denominator of the masked network; the narrowed attention keeps that term as one
extra logit ``log(removed)`` per row (:class:`NarrowAttention`), so the narrowed network computes
the masked network's function exactly (float rounding aside).

:func:`narrow_model` finds the dead channels of a (masked) network and builds the network with
only the live ones; :func:`build_narrow_model` rebuilds it from its widths (what a checkpoint
records: plain ints, so it loads with ``weights_only=True``). Every head of one attention keeps
the same number of channels (the head reshape needs it): a head with fewer live channels keeps
some dead ones, which changes nothing.

Example:
    >>> import torch
    >>> from mirl.models import build_model
    >>> net = build_model("tiny")
    >>> with torch.no_grad():
    ...     net.encoder_level1[0].ffn.project_out.weight[:, 3:] = 0   # hidden channels 3.. are dead
    >>> small = narrow_model(net)
    >>> small.narrow_widths["encoder_level1.0.ffn.hidden"]
    3
    >>> x = torch.rand(1, 3, 32, 32)
    >>> bool(torch.allclose(small(x), net(x), atol=1e-5))
    True
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mirl.errors import MirlError

from .config import ModelConfig
from .promptir import Attention, FeedForward, PromptIR, TransformerBlock

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("hidden", "query", "keyvalue", "upsample")
# (upsample module, the 1x1 convolution that alone reads its output)
UPSAMPLES: tuple[tuple[str, str], ...] = (("up4_3", "reduce_chan_level3"), ("up3_2", "reduce_chan_level2"))
SHUFFLE = 4  # PixelShuffle(2): 4 convolution outputs make one channel


@dataclass(frozen=True)
class Slot:
    """The elements of every channel of a unit in one tensor: along ``dim``, channel ``c`` owns
    indices ``index[c]`` (a ``(channels, k)`` tensor)."""

    tensor: str
    dim: int
    index: torch.Tensor

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """``(channels, k * rest)``: each channel's elements of ``t``."""
        return t.movedim(self.dim, 0)[self.index].flatten(1)


@dataclass(frozen=True)
class ChannelUnit:
    """One internal dimension of PromptIR (see the module's docstring).

    ``slots`` are the tensors the channels live in; ``dead_if`` is a test in conjunctive form:
    a channel is dead when in every clause some group of slots is all zero for that channel.
    ``module`` is the submodule that a narrowed network replaces.
    """

    name: str
    kind: str
    module: str
    heads: int
    per_head: int
    slots: tuple[Slot, ...]
    dead_if: tuple[tuple[tuple[int, ...], ...], ...]

    @property
    def channels(self) -> int:
        return self.heads * self.per_head

    def dead(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(channels,)`` bool: the channels whose contribution is exactly zero in ``state``."""
        zero = [(s.take(state[s.tensor]) == 0).all(1) for s in self.slots]
        out = torch.ones(self.channels, dtype=torch.bool)
        for clause in self.dead_if:
            any_group = torch.zeros(self.channels, dtype=torch.bool)
            for group in clause:
                all_zero = torch.ones(self.channels, dtype=torch.bool)
                for i in group:
                    all_zero &= zero[i]
                any_group |= all_zero
            out &= any_group
        return out


def _slot(tensor: str, dim: int, index: list[list[int]]) -> Slot:
    return Slot(tensor, dim, torch.tensor(index, dtype=torch.long))


def _block_units(prefix: str, block: TransformerBlock) -> list[ChannelUnit]:
    attn, ffn = block.attn, block.ffn
    units: list[ChannelUnit] = []
    # feed-forward hidden channels
    h = ffn.project_out.in_channels
    p = f"{prefix}.ffn"
    bias = ffn.project_in.bias is not None
    slots = [_slot(f"{p}.project_out.weight", 1, [[c] for c in range(h)]),
             _slot(f"{p}.project_in.weight", 0, [[c] for c in range(h)]),
             _slot(f"{p}.project_in.weight", 0, [[c + h] for c in range(h)]),
             _slot(f"{p}.dwconv.weight", 0, [[c] for c in range(h)]),
             _slot(f"{p}.dwconv.weight", 0, [[c + h] for c in range(h)])]
    groups = [(0,), (1,), (2,), (3,), (4,)]
    if bias:  # a zero producer row still emits its bias: the bias must be zero too
        slots += [_slot(f"{p}.project_in.bias", 0, [[c] for c in range(h)]),
                  _slot(f"{p}.project_in.bias", 0, [[c + h] for c in range(h)]),
                  _slot(f"{p}.dwconv.bias", 0, [[c] for c in range(h)]),
                  _slot(f"{p}.dwconv.bias", 0, [[c + h] for c in range(h)])]
        groups = [(0,), (1, 5, 7), (2, 6, 8), (3, 7), (4, 8)]
    units.append(ChannelUnit(f"{p}.hidden", "hidden", p, 1, h, tuple(slots), (tuple(groups),)))
    # attention: query channels (with their output column), key/value pairs
    d, heads = attn.qkv.in_channels, attn.num_heads
    a = f"{prefix}.attn"
    q = [[i] for i in range(d)]
    slots = [_slot(f"{a}.project_out.weight", 1, q), _slot(f"{a}.qkv.weight", 0, q), _slot(f"{a}.qkv_dwconv.weight", 0, q)]
    if bias:
        slots += [_slot(f"{a}.qkv.bias", 0, q), _slot(f"{a}.qkv_dwconv.bias", 0, q)]
    units.append(ChannelUnit(f"{a}.query", "query", a, heads, d // heads, tuple(slots), (((0,),),)))
    k, v = [[d + j] for j in range(d)], [[2 * d + j] for j in range(d)]
    slots = [_slot(f"{a}.qkv.weight", 0, k), _slot(f"{a}.qkv.weight", 0, v),
             _slot(f"{a}.qkv_dwconv.weight", 0, k), _slot(f"{a}.qkv_dwconv.weight", 0, v)]
    clauses: tuple[tuple[tuple[int, ...], ...], ...] = (((0,), (2,)), ((1,), (3,)))
    if bias:
        slots += [_slot(f"{a}.qkv.bias", 0, k), _slot(f"{a}.qkv.bias", 0, v),
                  _slot(f"{a}.qkv_dwconv.bias", 0, k), _slot(f"{a}.qkv_dwconv.bias", 0, v)]
        clauses = (((0, 4, 6), (2, 6)), ((1, 5, 7), (3, 7)))
    units.append(ChannelUnit(f"{a}.keyvalue", "keyvalue", a, heads, d // heads, tuple(slots), clauses))
    return units


def _upsample_unit(model: PromptIR, up: str, reduce: str) -> ChannelUnit:
    conv = model.get_submodule(up).body[0]
    n = conv.out_channels // SHUFFLE
    slots = (_slot(f"{reduce}.weight", 1, [[c] for c in range(n)]),
             _slot(f"{up}.body.0.weight", 0, [[SHUFFLE * c + r for r in range(SHUFFLE)] for c in range(n)]))
    return ChannelUnit(f"{up}.channels", "upsample", up, 1, n, slots, (((0,), (1,)),))


def channel_units(config: ModelConfig) -> list[ChannelUnit]:
    """Every internal dimension of PromptIR built from ``config``, in module order.

    Example:
        >>> from mirl.models import preset
        >>> units = channel_units(preset("tiny"))
        >>> [u.name for u in units[:3]]
        ['encoder_level1.0.ffn.hidden', 'encoder_level1.0.attn.query', 'encoder_level1.0.attn.keyvalue']
        >>> sorted({u.kind for u in units})
        ['hidden', 'keyvalue', 'query', 'upsample']
    """
    with torch.device("meta"):  # shapes only
        model = PromptIR(config)
    units: list[ChannelUnit] = []
    for name, module in model.named_modules():
        if isinstance(module, TransformerBlock):
            units += _block_units(name, module)
    for up, reduce in UPSAMPLES:
        units.append(_upsample_unit(model, up, reduce))
    return units


class NarrowAttention(Attention):
    """Transposed attention with ``query`` query/output channels and ``keyvalue`` key/value
    channels per head (instead of ``dim / heads`` each), and ``nulls`` removed key/value pairs per
    head whose zero keys still add ``exp(0)`` to every softmax denominator, as in the masked
    network they come from. Parameter names are :class:`Attention`'s.

    Example:
        >>> attn = NarrowAttention(8, 2, query=3, keyvalue=2, bias=False)
        >>> attn(torch.rand(1, 8, 4, 4)).shape, attn.nulls
        (torch.Size([1, 8, 4, 4]), 2)
    """

    def __init__(self, dim: int, num_heads: int, query: int, keyvalue: int, bias: bool) -> None:
        nn.Module.__init__(self)
        self.num_heads, self.query, self.keyvalue = num_heads, query, keyvalue
        self.nulls = dim // num_heads - keyvalue
        width = num_heads * (query + 2 * keyvalue)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, width, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=bias)
        self.project_out = nn.Conv2d(num_heads * query, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        heads, nq, nkv = self.num_heads, self.query, self.keyvalue
        q, k, v = self.qkv_dwconv(self.qkv(x)).split([heads * nq, heads * nkv, heads * nkv], dim=1)
        q, k, v = q.reshape(b, heads, nq, h * w), k.reshape(b, heads, nkv, h * w), v.reshape(b, heads, nkv, h * w)
        if self.impl == "fast":  # as Attention.forward
            acc = torch.promote_types(q.dtype, torch.float32)
            q_norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True, dtype=acc).clamp_min(1e-12)
            k_norm = torch.linalg.vector_norm(k, dim=-1, keepdim=True, dtype=acc).clamp_min(1e-12)
            scores = (q @ k.transpose(-2, -1)) / (q_norm * k_norm.transpose(-2, -1))
        else:
            scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        logits = scores * self.temperature
        if self.nulls:  # the removed pairs: `nulls` logits of 0 are one logit of log(nulls)
            attn = F.pad(logits, (0, 1), value=math.log(self.nulls)).softmax(dim=-1)[..., :nkv]
        else:
            attn = logits.softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, heads * nq, h, w))


def _check_widths(config: ModelConfig, widths: Mapping[str, int], units: Mapping[str, ChannelUnit], source: str) -> None:
    for name, n in widths.items():
        if name not in units:
            raise MirlError(f"{source}: narrowed width for {name!r}, which is no internal dimension of this PromptIR "
                            f"(valid: {', '.join(list(units)[:4])}, ...); the file is damaged or of another architecture")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= units[name].per_head:
            raise MirlError(f"{source}: narrowed width {name} = {n!r} is not a whole number from 1 to "
                            f"{units[name].per_head}; the file is damaged")


def build_narrow_model(config: ModelConfig, widths: Mapping[str, int], impl: str = "fast", source: str = "widths") -> PromptIR:
    """A :class:`PromptIR` whose internal dimensions have ``widths`` channels per head (units not
    named keep theirs); ``model.narrow_widths`` records them. ``source`` names the file in errors.

    Example:
        >>> from mirl.models import preset
        >>> net = build_narrow_model(preset("tiny"), {"encoder_level1.0.ffn.hidden": 4})
        >>> tuple(net.encoder_level1[0].ffn.project_in.weight.shape)
        (8, 8, 1, 1)
    """
    units = {u.name: u for u in channel_units(config)}
    widths = dict(widths)
    _check_widths(config, widths, units, source)
    model = PromptIR(config, impl=impl)  # type: ignore[arg-type]
    bias = config.bias
    done: set[str] = set()
    for name, unit in units.items():
        if unit.module in done or not any(u.module == unit.module and u.name in widths for u in units.values()):
            continue
        done.add(unit.module)
        if unit.kind == "hidden":
            n = widths[name]
            ffn: FeedForward = model.get_submodule(unit.module)  # type: ignore[assignment]
            dim = ffn.project_in.in_channels
            ffn.project_in = nn.Conv2d(dim, 2 * n, kernel_size=1, bias=bias)
            ffn.dwconv = nn.Conv2d(2 * n, 2 * n, 3, padding=1, groups=2 * n, bias=bias)
            ffn.project_out = nn.Conv2d(n, dim, kernel_size=1, bias=bias)
        elif unit.kind in ("query", "keyvalue"):
            parent, _, leaf = unit.module.rpartition(".")
            old: Attention = model.get_submodule(unit.module)  # type: ignore[assignment]
            query = widths.get(f"{unit.module}.query", unit.per_head)
            keyvalue = widths.get(f"{unit.module}.keyvalue", unit.per_head)
            setattr(model.get_submodule(parent), leaf,
                    NarrowAttention(old.qkv.in_channels, old.num_heads, query, keyvalue, bias))
        else:
            n = widths[name]
            up = model.get_submodule(unit.module)
            reduce_name = dict(UPSAMPLES)[unit.module]
            reduce: nn.Conv2d = model.get_submodule(reduce_name)  # type: ignore[assignment]
            up.body[0] = nn.Conv2d(up.body[0].in_channels, SHUFFLE * n, 3, padding=1, bias=False)
            skip = reduce.in_channels - unit.per_head
            setattr(model, reduce_name, nn.Conv2d(n + skip, reduce.out_channels, kernel_size=1, bias=reduce.bias is not None))
    model.narrow_widths = widths  # type: ignore[assignment]
    model.set_impl(impl)  # type: ignore[arg-type]
    return model


@dataclass(frozen=True)
class NarrowPlan:
    """Which channels of each unit a narrowed network keeps: ``keep[unit]`` (sorted channel
    indices, the same count in every head) and ``widths[unit]`` (that count)."""

    config: ModelConfig
    units: tuple[ChannelUnit, ...]
    keep: dict[str, list[int]]
    widths: dict[str, int]

    def apply(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Narrow every tensor of ``tensors`` (a full-size state dict or mask; other names pass)."""
        out = dict(tensors)
        for (name, dim), index in self.indices().items():
            if name in out:
                out[name] = out[name].index_select(dim, index)
        return out

    def indices(self) -> dict[tuple[str, int], torch.Tensor]:
        """``{(tensor, dim): indices kept along dim}``: the kept channels' and those no unit owns."""
        sizes = self._sizes()
        owned: dict[tuple[str, int], set[int]] = {}
        kept: dict[tuple[str, int], set[int]] = {}
        for unit in self.units:
            keep = torch.tensor(self.keep[unit.name], dtype=torch.long)
            for slot in unit.slots:
                key = (slot.tensor, slot.dim)
                owned.setdefault(key, set()).update(slot.index.flatten().tolist())
                kept.setdefault(key, set()).update(slot.index[keep].flatten().tolist())
        return {key: torch.tensor(sorted((set(range(sizes[key])) - owned[key]) | kept[key]), dtype=torch.long)
                for key in owned}

    def _sizes(self) -> dict[tuple[str, int], int]:
        with torch.device("meta"):
            shapes = {n: tuple(t.shape) for n, t in PromptIR(self.config).state_dict().items()}
        return {(slot.tensor, slot.dim): shapes[slot.tensor][slot.dim] for unit in self.units for slot in unit.slots}

    def build(self, impl: str = "fast") -> PromptIR:
        """The narrowed network, freshly initialised: load :meth:`apply`'s state dict into it."""
        return build_narrow_model(self.config, self.widths, impl)

    def parameters(self) -> int:
        """Parameter values of the narrowed network."""
        with torch.device("meta"):
            return sum(p.numel() for p in build_narrow_model(self.config, self.widths).parameters())


def plan_narrowing(model: PromptIR) -> NarrowPlan:
    """Which channels of ``model`` (a full-size PromptIR, pruned weights zero) do work.

    In every unit and head the live channels are kept; a head keeps as many channels as the
    unit's fullest head (dead ones, lowest index first, fill the others), at least one.

    Example:
        >>> from mirl.models import build_model
        >>> plan = plan_narrowing(build_model("tiny"))
        >>> plan.widths["up4_3.channels"], plan.parameters() == sum(p.numel() for p in build_model("tiny").parameters())
        (16, True)
    """
    if getattr(model, "narrow_widths", None) is not None:
        raise MirlError("this network is narrowed already; plan_narrowing needs the full-size (masked) network")
    state = {n: t.detach().cpu() for n, t in model.state_dict().items()}
    units = channel_units(model.config)
    keep: dict[str, list[int]] = {}
    widths: dict[str, int] = {}
    for unit in units:
        dead = unit.dead(state).view(unit.heads, unit.per_head)
        n = max(1, int((~dead).sum(1).max()))
        chosen: list[int] = []
        for head in range(unit.heads):
            order = sorted(range(unit.per_head), key=lambda c: (bool(dead[head, c]), c))  # live first, then by index
            chosen += sorted(head * unit.per_head + c for c in order[:n])
        keep[unit.name], widths[unit.name] = chosen, n
    return NarrowPlan(model.config, tuple(units), keep, widths)


def narrow_model(model: PromptIR, impl: str | None = None) -> PromptIR:
    """``model`` (a full-size PromptIR whose pruned weights are zero) with its dead channels
    removed: the same function (float rounding aside), fewer weights and operations. A network
    that is narrowed already comes back as a copy.

    Example:
        >>> from mirl.models import build_model, count_parameters
        >>> count_parameters(narrow_model(build_model("tiny"))) == count_parameters(build_model("tiny"))
        True
    """
    if getattr(model, "narrow_widths", None) is not None:
        return copy.deepcopy(model)
    plan = plan_narrowing(model)
    state = plan.apply({n: t.detach().cpu() for n, t in model.state_dict().items()})
    narrowed = plan.build(impl or model.impl)
    narrowed.load_state_dict(state)
    device = next(model.parameters()).device
    narrowed.to(device).train(model.training)
    removed = sum(u.channels - plan.widths[u.name] * u.heads for u in plan.units)
    log.info("narrowed PromptIR: %d of %d internal channels removed", removed, sum(u.channels for u in plan.units))
    return narrowed


def is_narrowed(model: nn.Module) -> bool:
    """Whether ``model`` was built by :func:`build_narrow_model` (its tensors are narrowed)."""
    return getattr(model, "narrow_widths", None) is not None


__all__ = ["KINDS", "ChannelUnit", "NarrowAttention", "NarrowPlan", "Slot", "build_narrow_model", "channel_units",
           "is_narrowed", "narrow_model", "plan_narrowing"]
