"""Predicted peak memory of one training step, without a GPU.

The study's own step (:class:`mirl.study.step.TrainStep`: forward, L1 loss, backward, AdamW) runs
on fake tensors (shapes, dtypes and strides, no data, no arithmetic), and the lifetime of every
storage is followed, as the CUDA caching allocator's ``max_memory_allocated`` counts it (blocks
rounded up to 512 bytes; weights, optimizer state and the batch included). The fast path runs
under CPU autocast, which casts the same operations to bf16 as CUDA autocast does here.
Not modelled: cuDNN workspaces, the CUDA graph's own pool, fragmentation.
``docs/benchmarks.md`` compares its figures with what the H200 measured.

It runs the paper network at batch 32 / 128x128 (about 100 GiB on a GPU) in 10-20 s on two CPU
cores, so a change that keeps less for backward can be judged before a GPU session.

Example:
    python -m benchmarks.memory_model --preset paper --size 8x64 --size 32x128
    python -m benchmarks.memory_model --preset tiny --size 2x32 --json /tmp/memory.json
"""

from __future__ import annotations

import argparse
import contextlib
import re
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from benchmarks.common import GIB, format_table, write_json

ALLOCATOR_BLOCK = 512  # bytes: the CUDA caching allocator's rounding


def _block_bytes(nbytes: int) -> int:
    return -(-nbytes // ALLOCATOR_BLOCK) * ALLOCATOR_BLOCK


class LiveBytes(TorchDispatchMode):
    """Follows the bytes of every storage that an operation creates while the mode is active,
    until the storage is freed; ``adopt`` counts tensors that exist already (weights, batch).

    Example:
        >>> with FakeTensorMode():
        ...     a = torch.empty(1024)
        ...     with LiveBytes() as live:
        ...         live.adopt([a])
        ...         b = a * 2
        ...         del b
        >>> live.peak, live.current
        (8192, 4096)
    """

    def __init__(self, owner: Callable[[], str] | None = None) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._owner = owner
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()  # storage -> (bytes, owner)
        self._refs: list[weakref.ref] = []

    def adopt(self, tensors: Iterable[torch.Tensor]) -> None:
        for t in tensors:
            self._add(t.untyped_storage())

    def reset_peak(self) -> None:
        self.peak = self.current

    def _release(self, nbytes: int) -> None:
        self.current -= nbytes

    def _add(self, storage: torch.UntypedStorage) -> None:
        if storage in self._seen:
            return
        nbytes = _block_bytes(storage.nbytes())
        self._seen[storage] = (nbytes, self._owner() if self._owner else "")
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        self._refs.append(weakref.ref(storage, lambda _, n=nbytes: self._release(n)))

    def live_by_owner(self) -> dict[str, int]:
        """Bytes alive now, by the ``owner()`` that was current when each storage was made."""
        out: dict[str, int] = {}
        for nbytes, owner in list(self._seen.values()):
            out[owner] = out.get(owner, 0) + nbytes
        return out

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t.untyped_storage())
        return out


@contextlib.contextmanager
def module_owner(model: torch.nn.Module) -> Iterator[Callable[[], str]]:
    """``owner()`` names the innermost module running now, with block indices as ``*`` and the
    part inside a transformer block as ``block.<path>`` (``block.ffn``, ``block.attn.qkv``), so
    that all blocks add up; ``-`` outside any module (loss, optimizer, autograd's backward)."""
    from mirl.models.promptir import TransformerBlock

    blocks = [name for name, m in model.named_modules() if isinstance(m, TransformerBlock)]
    labels: dict[torch.nn.Module, str] = {}
    for name, module in model.named_modules():
        block = max((b for b in blocks if name == b or name.startswith(b + ".")), key=len, default=None)
        label = "block" + name[len(block):] if block is not None else re.sub(r"\.\d+(?=\.|$)", ".*", name)
        labels[module] = label or "network"
    stack: list[str] = []

    def enter(module: torch.nn.Module, _inputs: Any) -> None:
        stack.append(labels[module])

    def leave(_module: torch.nn.Module, _inputs: Any, _output: Any) -> None:  # None: the output stays
        stack.pop()

    handles = [m.register_forward_pre_hook(enter) for m in model.modules()]
    handles += [m.register_forward_hook(leave) for m in model.modules()]
    try:
        yield lambda: stack[-1] if stack else "-"
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class StepPath:
    """What the modelled step runs: implementation, bf16 autocast, channels-last, AdamW kind."""

    name: str
    impl: str
    amp: bool
    channels_last: bool
    fused_adamw: bool


PATHS: dict[str, StepPath] = {
    "reference": StepPath("reference", "reference", amp=False, channels_last=False, fused_adamw=False),
    "fast": StepPath("fast", "fast", amp=True, channels_last=True, fused_adamw=True),  # the CUDA fast path
    "fast fp32": StepPath("fast fp32", "fast", amp=False, channels_last=True, fused_adamw=True),
}


def step_memory(preset: str, batch: int, patch: int, path: StepPath, steps: int = 2) -> dict[str, Any]:
    """Peak bytes of a training step (after ``steps - 1`` steps created the optimizer state),
    and what lives at the end of the forward pass (kept for backward), in all and by the module
    that made it (``kept_by_module``, GiB, largest first; see :func:`module_owner`).

    Example:
        >>> r = step_memory("tiny", 2, 32, PATHS["fast"])
        >>> 0 < r["saved_for_backward_gib"] < r["peak_gib"]
        True
    """
    from mirl.models import build_model
    from mirl.study.step import StepOptions, build_train_step

    with FakeTensorMode(allow_non_fake_inputs=False):
        net = build_model(preset, impl=path.impl)
        options = StepOptions(amp=path.amp, fused=path.fused_adamw, channels_last=path.channels_last)
        step = build_train_step(net, None, torch.device("cpu"), options, lr=2e-4)  # the study's builder
        params, optimizer = list(net.parameters()), step.optimizer
        x, y = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, patch, patch)
        kept: dict[str, int] = {}

        def at_loss(loss: torch.Tensor) -> None:  # the forward pass is done, backward not begun
            kept["bytes"] = live.current
            kept_by_module.update(live.live_by_owner())

        kept_by_module: dict[str, int] = {}
        with module_owner(net) as owner, LiveBytes(owner) as live:
            live.adopt([*params, x, y])
            weights = live.current
            for _ in range(steps - 1):
                step(x, y)
            optimizer.zero_grad(set_to_none=True)  # as the step begins: the last gradients go
            state = live.current
            live.reset_peak()
            step(x, y, before_backward=at_loss)
    return {
        "path": path.name,
        "size": f"{batch}x{patch}",
        "weights_gib": weights / GIB,
        "weights_and_state_gib": state / GIB,
        "saved_for_backward_gib": (kept["bytes"] - state) / GIB,
        "peak_gib": live.peak / GIB,
        "kept_by_module": {k: v / GIB for k, v in sorted(kept_by_module.items(), key=lambda kv: -kv[1]) if k != "-"},
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory_model", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--size", action="append", default=None, help="BATCHxPATCH (default 8x64 and 32x128)")
    p.add_argument("--path", action="append", default=None, choices=sorted(PATHS), help="default: reference and fast")
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--breakdown", type=int, default=0, metavar="N",
                   help="also print the N modules that keep the most for backward, per row")
    args = p.parse_args(argv)
    sizes = args.size or ["8x64", "32x128"]
    rows = []
    for size in sizes:
        try:
            batch, patch = (int(v) for v in size.lower().split("x"))
        except ValueError:
            p.error(f"--size {size!r}: expected BATCHxPATCH, e.g. 8x64")
        by_path = {name: step_memory(args.preset, batch, patch, PATHS[name]) for name in args.path or ["reference", "fast"]}
        base = by_path.get("reference")
        for r in by_path.values():
            r["ratio_to_reference"] = r["peak_gib"] / base["peak_gib"] if base else None
            rows.append(r)
    print(f"predicted peak memory of one training step, preset {args.preset} (fake tensors; GiB)")
    print(format_table(rows, ["size", "path", "weights_and_state_gib", "saved_for_backward_gib", "peak_gib",
                              "ratio_to_reference"]))
    for r in rows if args.breakdown else []:
        kept = r["saved_for_backward_gib"]
        print(f"\nkept for backward, {r['size']} {r['path']} ({kept:.3f} GiB), by the module that made it:")
        top = list(r["kept_by_module"].items())[: args.breakdown]
        print(format_table([{"module": k, "gib": v, "share": f"{v / kept:.1%}"} for k, v in top], ["module", "gib", "share"]))
    result = {"preset": args.preset, "torch": torch.__version__, "rows": rows}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
