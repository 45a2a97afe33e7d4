"""One training step (the study's loss, masked gradients, its optimizer, re-masked weights), optionally captured
once as a CUDA graph and replayed: the step the study loop and the benchmarks share.

A replayed graph launches the whole forward, backward and optimizer update as one unit, which
removes the per-kernel launch cost that dominates PromptIR's many small operations on a GPU.
The graph needs fixed batch shapes, a ``capturable`` optimizer and the learning rate as a
device tensor (:func:`make_adamw` does both); :meth:`TrainStep.set_lr` updates it in place.

:func:`build_train_step` assembles the whole step (channels-last weights, compilation, the mask,
AdamW) from :class:`StepOptions`; the study (:func:`mirl.study.train.train_level`) and the training
benchmark (``benchmarks/train.py``) both build theirs with it.

Example:
    >>> import torch
    >>> from mirl.models import build_model
    >>> net = build_model("tiny")
    >>> step = build_train_step(net, {}, torch.device("cpu"), StepOptions(fused=True), lr=1e-3)
    >>> x = torch.rand(2, 3, 32, 32)
    >>> float(step(x, x)) > 0
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mirl.pruning.mask import MaskApplier

log = logging.getLogger(__name__)

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, target) -> 0-d tensor

# "regional" compiles each transformer block (:func:`compile_blocks`); the others hand the whole
# model to ``torch.compile`` with that mode ("default": torch's default mode).
COMPILE_MODES: tuple[str, ...] = ("none", "regional", "default", "reduce-overhead", "max-autotune-no-cudagraphs")


def make_adamw(
    params: list[nn.Parameter], lr: float, weight_decay: float = 0.01, fused: bool = False, capturable: bool = False
) -> torch.optim.Optimizer:
    """AdamW; ``fused`` uses the single-kernel implementation where this torch build has it for
    the parameters' device (else the default one); ``capturable`` (for CUDA graphs) also holds
    the learning rate as a device tensor so a schedule can change it between replays.

    Example:
        >>> opt = make_adamw([nn.Parameter(torch.zeros(3))], lr=2e-4, fused=True)
    """
    kwargs: dict = {"lr": lr, "weight_decay": weight_decay}
    if capturable:
        kwargs.update(capturable=True, lr=torch.tensor(lr, device=params[0].device))
    if fused:
        try:
            return torch.optim.AdamW(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(params, **kwargs)


def params_to_channels_last(model: nn.Module) -> nn.Module:
    """Store every 4-D parameter channels-last, in place (``model.to(memory_format=...)`` fails
    on PromptIR's 5-D prompts). Values and state-dict keys are unchanged.

    Example:
        >>> net = params_to_channels_last(nn.Conv2d(3, 8, 3))
        >>> net.weight.is_contiguous(memory_format=torch.channels_last)
        True
    """
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
    return model


def compile_blocks(model: nn.Module, block_type: type[nn.Module] | None = None,
                   memory_budget: float = 1.0) -> list[nn.Module]:
    """Regional ``torch.compile``: compile each repeated block (PromptIR's ``TransformerBlock``)
    in place, so elementwise chains (norms, gates, casts) fuse into few kernels while the rest
    of the network stays eager. Blocks of one width and resolution share one compiled graph;
    the first step pays the compilation (reported as warm-up by the benchmarks). Returns the
    compiled blocks; :func:`uncompile_blocks` makes them eager again.

    ``memory_budget`` < 1 asks the compiler to keep at most that fraction of the activations it
    would keep by default, recomputing the rest in backward
    (``torch._functorch.config.activation_memory_budget``, a process-wide setting; a new value
    drops the graphs compiled so far, which were partitioned for the old one). By default a
    compiled block keeps more than the eager fast path (26 against 19 activations of the
    block's width on the CPU, bf16), 0.7 keeps 18 and 0.5 keeps 12.

    Example:
        >>> from mirl.models import build_model
        >>> blocks = compile_blocks(build_model("tiny"))  # compiles lazily, at the first forward
    """
    if not 0.0 < memory_budget <= 1.0:
        raise ValueError(f"memory_budget must be in (0, 1], got {memory_budget!r}")
    if block_type is None:
        from mirl.models.promptir import TransformerBlock

        block_type = TransformerBlock
    import torch._dynamo
    import torch._functorch.config

    # one graph per (width, resolution) of the network; the default limit of 8 is too low
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 64))
    if torch._functorch.config.activation_memory_budget != memory_budget:
        torch._dynamo.reset()  # cached graphs were partitioned for another budget
        torch._functorch.config.activation_memory_budget = memory_budget
    blocks = [m for m in model.modules() if isinstance(m, block_type)]
    for block in blocks:
        block.compile(dynamic=False)
    return blocks


@contextlib.contextmanager
def eager_blocks(model: nn.Module) -> Iterator[None]:
    """Run ``model``'s compiled blocks eagerly inside the block, compiled again after it: an
    evaluation in the middle of training (images of other sizes) must not compile a graph each.

    Example:
        >>> from mirl.models import build_model
        >>> net = build_model("tiny"); _ = compile_blocks(net)
        >>> with eager_blocks(net):
        ...     pass
    """
    saved = [(m, m._compiled_call_impl) for m in model.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    for module, _ in saved:
        module._compiled_call_impl = None
    try:
        yield
    finally:
        for module, compiled in saved:
            module._compiled_call_impl = compiled


def uncompile_blocks(blocks: list[nn.Module]) -> None:
    """Undo :func:`compile_blocks` (evaluation sees images of many sizes: one compilation each
    would cost more than it saves).

    Example:
        >>> from mirl.models import build_model
        >>> uncompile_blocks(compile_blocks(build_model("tiny")))
    """
    for block in blocks:
        block._compiled_call_impl = None  # what nn.Module.compile sets


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


def _host_copies(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies in host memory: a snapshot of the weights and optimizer state (3 times the
    weights' size) then costs no device memory while the capture's warm-up steps run."""
    return [t.detach().to("cpu", copy=True) for t in tensors]


def _restore(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    for target, source in zip(targets, sources):
        target.copy_(source)


@contextlib.contextmanager
def unchanged_training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Steps taken inside leave no trace: weights, optimizer state (a fresh one is left fresh,
    i.e. zeros at step 0) and learning rates are restored in place, at the same addresses.
    The snapshot is kept in host memory.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> opt = make_adamw(list(net.parameters()), lr=0.1)
        >>> with unchanged_training_state(net, opt):
        ...     net(torch.ones(1, 2)).sum().backward(); opt.step()
    """
    lrs = [g["lr"].clone() if torch.is_tensor(g["lr"]) else g["lr"] for g in optimizer.param_groups]
    had_state = bool(optimizer.state)
    saved_state = _host_copies(_optimizer_tensors(optimizer))
    params = [p.detach() for p in model.parameters()]
    saved_params = _host_copies(params)
    try:
        yield
    finally:
        with torch.no_grad():
            if had_state:
                _restore(_optimizer_tensors(optimizer), saved_state)
            elif optimizer.state:
                torch._foreach_zero_(_optimizer_tensors(optimizer))
            _restore(params, saved_params)
            for group, lr in zip(optimizer.param_groups, lrs):
                if torch.is_tensor(group["lr"]):
                    group["lr"].copy_(lr)
                else:
                    group["lr"] = lr


class TrainStep:
    """``step(x, y) -> loss``: one optimizer step; the loss (a detached 0-d tensor, computed
    before the update) is not read, so the host never waits for the device.

    ``cuda_graph`` (CUDA only) captures the step at the first call and replays it afterwards;
    batches must then keep their shape. Capture runs three warm-up steps and
    then restores weights and optimizer state (:func:`unchanged_training_state`), so training goes
    on exactly from where it was, fresh or resumed. ``before_backward(loss)`` (eager only) may
    inspect the loss and raise before the update, e.g. on a NaN.

    Example:
        >>> import torch
        >>> from mirl.models import build_model
        >>> net = build_model("tiny")
        >>> step = TrainStep(net, make_adamw(list(net.parameters()), lr=1e-3), torch.device("cpu"))
        >>> step.set_lr(5e-4)
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        masker: MaskApplier | None = None,
        amp: bool = False,
        cuda_graph: bool = False,
        channels_last: bool = False,
        loss_fn: Loss = F.l1_loss,
    ) -> None:
        if cuda_graph and device.type != "cuda":
            raise ValueError(f"cuda_graph needs a CUDA device, not {device}")
        self.model, self.optimizer, self.device, self.masker = model, optimizer, device, masker
        self.amp, self.cuda_graph, self.channels_last = amp, cuda_graph, channels_last
        self.loss_fn = loss_fn
        self.compiled_blocks: list[nn.Module] = []  # set by build_train_step; see uncompile_blocks
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every group (in place when it is a tensor, as graphs need)."""
        for group in self.optimizer.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(lr)
            elif self.cuda_graph:
                group["lr"] = torch.tensor(lr, device=self.device)
            else:
                group["lr"] = lr

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        # The autocast weight cache would keep graph-pool tensors alive across replays.
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not self.cuda_graph)

    def _eager(self, x: torch.Tensor, y: torch.Tensor, before_backward: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.model(x)
        loss = self.loss_fn(out.float(), y)
        if before_backward is not None:
            before_backward(loss.detach())
        loss.backward()
        if self.masker is not None:
            self.masker.grads()
        self.optimizer.step()
        if self.masker is not None:
            self.masker.weights()
        return loss.detach()

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        static_x, static_y = x.clone(), y.clone()
        with unchanged_training_state(self.model, self.optimizer):
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):  # warm-up on a side stream, as graph capture needs
                for _ in range(3):
                    self._eager(static_x, static_y)
            torch.cuda.current_stream(self.device).wait_stream(stream)
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loss = self._eager(static_x, static_y)
        self._graph, self._static = graph, (static_x, static_y, loss)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, before_backward: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            y = y.contiguous(memory_format=torch.channels_last)
        if not self.cuda_graph:
            return self._eager(x, y, before_backward)
        if self._graph is None:
            self._capture(x, y)
        assert self._graph is not None and self._static is not None
        static_x, static_y, loss = self._static
        if x.shape != static_x.shape:
            raise ValueError(f"a CUDA-graph step needs batches of shape {tuple(static_x.shape)}, got {tuple(x.shape)}")
        static_x.copy_(x, non_blocking=True)
        static_y.copy_(y, non_blocking=True)
        self._graph.replay()
        return loss.clone()


@dataclass(frozen=True)
class StepOptions:
    """How a training step runs (not what it computes): bf16 autocast, fused AdamW,
    channels-last weights, one CUDA graph per step, compilation (:data:`COMPILE_MODES`;
    ``compile_memory_budget`` as in :func:`compile_blocks`). All off by default: fp32, eager.

    Example:
        >>> StepOptions.for_study(torch.device("cpu"), impl="fast")
        StepOptions(amp=False, fused=True, channels_last=False, cuda_graph=False, compile='none', compile_memory_budget=1.0)
    """

    amp: bool = False
    fused: bool = False
    channels_last: bool = False
    cuda_graph: bool = False
    compile: str = "none"
    compile_memory_budget: float = 1.0

    @classmethod
    def for_study(
        cls,
        device: torch.device,
        *,
        impl: str = "fast",
        amp: str = "auto",
        cuda_graph: str = "auto",
        compile: str = "none",
        compile_memory_budget: float = 1.0,
        distributed: bool = False,
    ) -> StepOptions:
        """The study's rule, from its settings (:class:`mirl.study.config.StudyConfig` meanings):
        bf16 on CUDA unless ``amp="fp32"`` (the CPU trains in fp32); fused AdamW with
        ``impl="fast"``; channels-last and (unless ``cuda_graph="off"``) a CUDA graph on one GPU
        (``distributed`` False).

        Example:
            >>> StepOptions.for_study(torch.device("cuda"), distributed=True).cuda_graph
            False
        """
        single_gpu = device.type == "cuda" and not distributed
        return cls(amp=device.type == "cuda" and amp in ("auto", "bf16"), fused=impl == "fast",
                   channels_last=single_gpu, cuda_graph=single_gpu and cuda_graph == "auto",
                   compile=compile, compile_memory_budget=compile_memory_budget)


def time_steps(step: Callable[..., object], batch: tuple[torch.Tensor, ...], device: torch.device, steps: int, warmup: int) -> float:
    """Seconds that ``steps`` calls of ``step(*batch)`` take on ``device``, after ``warmup`` untimed
    ones (the device is synchronised before and after).

    Example:
        >>> time_steps(lambda x: x + 1, (torch.zeros(2),), torch.device("cpu"), steps=2, warmup=1) >= 0
        True
    """
    for _ in range(warmup):
        step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def build_train_step(
    model: nn.Module,
    mask: Mapping[str, torch.Tensor] | None,
    device: torch.device,
    options: StepOptions = StepOptions(),
    *,
    lr: float,
    weight_decay: float = 0.01,
    optimizer: str = "adamw",
    loss: str = "l1",
) -> TrainStep:
    """The training step of ``model`` (on ``device``; a DDP wrapper is allowed): weights made
    channels-last and blocks compiled in place as ``options`` ask, ``mask`` (names to 0/1
    tensors; ``None`` or empty: nothing pruned) applied to gradients and weights, a fresh
    ``optimizer`` (:mod:`mirl.study.optimizers`; default AdamW, :func:`make_adamw`) and the
    ``loss`` of :mod:`mirl.study.losses` (default L1). When either is registered with
    ``capturable=False`` the step runs eagerly instead of as a CUDA graph (logged; ``step.cuda_graph``
    tells). The compiled blocks are in ``step.compiled_blocks``.

    Example:
        >>> from mirl.models import build_model
        >>> net = build_model("tiny")
        >>> step = build_train_step(net, {"output.weight": torch.zeros_like(net.output.weight)},
        ...                         torch.device("cpu"), StepOptions(fused=True), lr=2e-4)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> _ = step(x, x)
        >>> int(net.output.weight.count_nonzero())
        0
    """
    if options.compile not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {options.compile!r}; valid: {list(COMPILE_MODES)}")
    if options.cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph needs a CUDA device, not {device}")
    net = model.module if hasattr(model, "module") else model
    if options.channels_last:
        params_to_channels_last(net)
    blocks = compile_blocks(net, memory_budget=options.compile_memory_budget) if options.compile == "regional" else []
    from mirl.study.losses import losses
    from mirl.study.optimizers import optimizers

    chosen = {"optimizer": optimizers.entry(optimizer), "loss": losses.entry(loss)}
    eager = [f"{kind} {entry.name!r}" for kind, entry in chosen.items() if not entry.capturable]
    if options.cuda_graph and eager:
        log.info("the %s cannot be captured in a CUDA graph: the training step runs eagerly", " and ".join(eager))
        options = dataclasses.replace(options, cuda_graph=False)
    masker = MaskApplier(net, mask or {})
    make_optimizer = chosen["optimizer"].item
    opt = make_optimizer(list(model.parameters()), lr, weight_decay, fused=options.fused, capturable=options.cuda_graph)
    runner = model
    if options.compile not in ("none", "regional"):
        runner = torch.compile(model, mode=None if options.compile == "default" else options.compile)
    step = TrainStep(runner, opt, device, masker, amp=options.amp, cuda_graph=options.cuda_graph,
                     channels_last=options.channels_last, loss_fn=chosen["loss"].item)
    step.compiled_blocks = blocks
    return step
