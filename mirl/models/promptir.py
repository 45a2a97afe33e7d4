"""PromptIR with prompts in the decoder, exactly as MIR-L uses it.

Two implementations share one set of modules and state-dict keys:

* ``impl="reference"`` performs the published operations (the WithBias LayerNorm written out
  with mean/var over a ``(b, h*w, c)`` view, the prompt mixing with ``repeat``), used for parity
  checks and as the baseline of the benchmarks;
* ``impl="fast"`` replaces them with equivalent cheaper operations (``F.layer_norm`` on a
  channels-last view, an ``einsum`` for the prompt mixing, attention scores normalised after
  the product rather than q and k before it) and keeps less for backward (the norm stays in
  bf16 under autocast, where the GDFN also recomputes its depth-wise convolution and the gate
  that its output projection reads); tests prove the same output and gradients within float
  tolerance.

Example:
    >>> import torch
    >>> from mirl.models import build_model
    >>> net = build_model("tiny")
    >>> net(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import contextlib
from typing import ClassVar, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

Impl = Literal["reference", "fast"]
IMPLS: tuple[str, ...] = ("reference", "fast")



class _ImplMixin:
    """Holds the implementation switch so ``PromptIR.set_impl`` can flip every submodule."""

    impl: str = "reference"


class WithBiasLayerNorm(nn.Module, _ImplMixin):
    """LayerNorm over channels of a ``(b, c, h, w)`` tensor, with scale and shift (eps 1e-5)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "fast":
            if _norm_as_reductions:  # a plain global: torch.compile traces it without a graph break
                return _channels_layer_norm_reductions(x, self.weight, self.bias)
            return _channels_layer_norm(x, self.weight, self.bias)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # b (h w) c
        mu = t.mean(-1, keepdim=True)
        sigma = t.var(-1, keepdim=True, unbiased=False)
        t = (t - mu) / torch.sqrt(sigma + 1e-5) * self.weight + self.bias
        return t.transpose(1, 2).reshape(b, c, h, w)


def _channels_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.layer_norm`` over the channels of ``(b, c, h, w)`` through a channels-last view.

    Under autocast with a bf16/fp16 input, autocast would run the norm on an fp32 copy and keep
    that copy for backward; the kernel accumulates in fp32 anyway, so the norm runs in the
    input's dtype and half the memory is kept.
    """
    xl = x.permute(0, 2, 3, 1)
    device = x.device.type
    if x.dtype != torch.float32 and torch.is_autocast_enabled(device):
        with torch.autocast(device, enabled=False):
            y = F.layer_norm(xl, (x.shape[1],), weight.to(x.dtype), bias.to(x.dtype), 1e-5)
    else:
        y = F.layer_norm(xl, (x.shape[1],), weight, bias, 1e-5)
    return y.permute(0, 3, 1, 2)


_norm_as_reductions = False


@contextlib.contextmanager
def channel_norm_as_reductions() -> Iterator[None]:
    """Within it, the ``fast`` implementation computes the channel LayerNorm as reductions over
    the channel axis: the form :func:`mirl.export.onnx_model.onnx_bytes` exports for the web page
    (faster in onnxruntime-web, slower in native onnxruntime at paper size; docs/benchmarks.md).
    Same function either way.

    Example:
        >>> with channel_norm_as_reductions():  # doctest: +SKIP
        ...     data = onnx_bytes(build_model("tiny"))
    """
    global _norm_as_reductions
    before, _norm_as_reductions = _norm_as_reductions, True
    try:
        yield
    finally:
        _norm_as_reductions = before


def _channels_layer_norm_reductions(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The channel norm as reductions over dim 1, without transposing the residual stream."""
    centred = x - x.mean(1, keepdim=True)
    variance = (centred * centred).mean(1, keepdim=True)
    return centred * torch.rsqrt(variance + 1e-5) * weight[:, None, None] + bias[:, None, None]


class _GatedDepthwiseProjection(torch.autograd.Function):
    """``project_out(gelu(x1) * x2)`` where ``x1, x2`` are the channel halves of the 3x3
    depth-wise convolution of ``h``: the GDFN after its input projection, keeping only ``h``
    for backward.

    Autograd would keep ``h``, the convolution's output, ``gelu(x1)`` and the gate that
    ``project_out`` reads (about 3 times as much); the backward recomputes the convolution
    (cheap: depth-wise) and the gate, with the same fused kernels (fp32 inside) that autograd
    would use. Under autocast it computes in the autocast dtype, as the plain layers would.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, h: torch.Tensor, dw_weight: torch.Tensor,
                dw_bias: torch.Tensor | None, out_weight: torch.Tensor, out_bias: torch.Tensor | None) -> torch.Tensor:
        device = h.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
        ctx.input_dtype, ctx.dtype = h.dtype, dtype
        h = h.to(dtype)
        with torch.autocast(device, enabled=False):
            x1, x2 = _conv(h, dw_weight, dw_bias, dtype, groups=h.shape[1]).chunk(2, dim=1)
            out = _conv(F.gelu(x1) * x2, out_weight, out_bias, dtype)
        ctx.save_for_backward(h, dw_weight, dw_bias, out_weight, out_bias)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, dw_weight, dw_bias, out_weight, out_bias = ctx.saved_tensors
        dtype, need = ctx.dtype, ctx.needs_input_grad
        grad, dw_w, out_w = grad.to(dtype), dw_weight.to(dtype), out_weight.to(dtype)  # cast once
        with torch.autocast(h.device.type, enabled=False):
            d = _conv(h, dw_w, dw_bias, dtype, groups=h.shape[1])
            x1, x2 = d.chunk(2, dim=1)
            gelu_x1 = F.gelu(x1)
            grad_gate, g_out_w, g_out_b = _conv_backward(
                grad, gelu_x1 * x2, out_w, out_bias, groups=1, padding=0,
                want=[True, need[3], out_bias is not None and need[4]])
            grad_d = torch.empty_like(d)  # both halves written in place: no concatenation
            grad_x1, grad_x2 = grad_d.chunk(2, dim=1)
            torch.mul(grad_gate, gelu_x1, out=grad_x2)
            torch.ops.aten.gelu_backward.grad_input(grad_gate * x2, x1, grad_input=grad_x1)
            g_h, g_dw_w, g_dw_b = _conv_backward(
                grad_d, h, dw_w, dw_bias, groups=h.shape[1], padding=1,
                want=[need[0], need[1], dw_bias is not None and need[2]])
        return (None if g_h is None else g_h.to(ctx.input_dtype), _like(g_dw_w, dw_weight), _like(g_dw_b, dw_bias),
                _like(g_out_w, out_weight), _like(g_out_b, out_bias))


def _conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype,
          groups: int = 1) -> torch.Tensor:
    """A stride-1 'same' convolution (3x3 or 1x1) in ``dtype``."""
    b = None if bias is None else bias.to(dtype)
    return F.conv2d(x, weight.to(dtype), b, padding=weight.shape[-1] // 2, groups=groups)


def _conv_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   groups: int, padding: int, want: list[bool]) -> tuple[torch.Tensor | None, ...]:
    """Gradients of :func:`_conv` for input, weight and bias (``None`` where not wanted);
    ``weight`` in the dtype the forward used."""
    return torch.ops.aten.convolution_backward(
        grad, x, weight, None if bias is None else [bias.shape[0]], [1, 1], [padding, padding], [1, 1],
        False, [0, 0], groups, want)


def _like(grad: torch.Tensor | None, param: torch.Tensor | None) -> torch.Tensor | None:
    return None if grad is None or param is None else grad.to(param.dtype)


class LayerNorm(nn.Module):
    """Wrapper that keeps the upstream key layout (``norm1.body.weight``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = WithBiasLayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FeedForward(nn.Module, _ImplMixin):
    """Gated depth-wise convolutional feed-forward network (GDFN)."""

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "fast" and torch.is_autocast_enabled(x.device.type) and not torch.compiler.is_compiling():
            # mixed-precision training (the GPU path) is bound by memory: keep less for backward;
            # in fp32 on a CPU the plain layers are faster (17% per step on the small preset);
            # under torch.compile the plain layers let the compiler fuse the gate and choose what
            # to recompute (the custom backward's out= writes would break the graph)
            return _GatedDepthwiseProjection.apply(self.project_in(x), self.dwconv.weight, self.dwconv.bias,
                                                   self.project_out.weight, self.project_out.bias)
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class Attention(nn.Module, _ImplMixin):
    """Multi-Dconv head transposed attention (MDTA): attention across channels."""

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (t.reshape(b, self.num_heads, -1, h * w) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        if self.impl == "fast":
            # q/|q| . k/|k| == (q . k) / (|q| |k|): scale the small (c/heads)^2 product instead of
            # writing (and keeping for backward) normalised copies of q and k
            # (norms accumulated in at least fp32 whatever autocast does with q and k; fp64 stays fp64)
            acc = torch.promote_types(q.dtype, torch.float32)
            q_norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True, dtype=acc).clamp_min(1e-12)
            k_norm = torch.linalg.vector_norm(k, dim=-1, keepdim=True, dtype=acc).clamp_min(1e-12)
            scores = (q @ k.transpose(-2, -1)) / (q_norm * k_norm.transpose(-2, -1))
        else:
            scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = (scores * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, expansion: float, bias: bool) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim)
        self.ffn = FeedForward(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_c: int, embed_dim: int, bias: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat * 2, 3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PromptGenBlock(nn.Module, _ImplMixin):
    """Mixes ``prompt_len`` learned prompts with weights predicted from the features."""

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, lin_dim: int) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)
        if self.impl == "fast":
            prompt = torch.einsum("bl,lchw->bchw", weights, self.prompt_param[0])
        else:
            prompt = weights[..., None, None, None] * self.prompt_param.unsqueeze(0).repeat(
                b, 1, 1, 1, 1, 1
            ).squeeze(1)
            prompt = torch.sum(prompt, dim=1)
        prompt = F.interpolate(prompt, (h, w), mode="bilinear")
        return self.conv3x3(prompt)


def _stage(dim: int, heads: int, blocks: int, cfg: ModelConfig) -> nn.Sequential:
    return nn.Sequential(
        *[TransformerBlock(dim, heads, cfg.ffn_expansion_factor, cfg.bias) for _ in range(blocks)]
    )


class PromptIR(nn.Module):
    """PromptIR (decoder prompts) built from a :class:`ModelConfig`.

    Attribute order follows the upstream module, so ``named_parameters()`` yields parameters in
    the published order. ``unused_in_forward`` declares the weights the forward pass never uses
    (pruning rules and the collapse check ask the network, as open_lth's models declare
    ``prunable_layer_names``).
    """

    # Upstream defines these six 1x1 convolutions but never calls them; they stay in the state dict
    # (and in the upstream prunable set), so published checkpoints load key for key.
    unused_in_forward: ClassVar[tuple[str, ...]] = (
        "chnl_reduce1.weight",
        "chnl_reduce2.weight",
        "chnl_reduce3.weight",
        "reduce_noise_channel_1.weight",
        "reduce_noise_channel_2.weight",
        "reduce_noise_channel_3.weight",
    )

    def __init__(self, cfg: ModelConfig, impl: Impl = "fast") -> None:
        super().__init__()
        self.config = cfg
        d, p, bias = cfg.dim, cfg.prompt_dims, cfg.bias
        tb = lambda width, heads: TransformerBlock(width, heads, cfg.ffn_expansion_factor, bias)  # noqa: E731
        conv1 = lambda cin, cout: nn.Conv2d(cin, cout, kernel_size=1, bias=bias)  # noqa: E731

        self.patch_embed = OverlapPatchEmbed(cfg.inp_channels, d, bias)
        self.prompt1 = PromptGenBlock(p[0], cfg.prompt_len, cfg.prompt_sizes[0], 2 * d)
        self.prompt2 = PromptGenBlock(p[1], cfg.prompt_len, cfg.prompt_sizes[1], 4 * d)
        self.prompt3 = PromptGenBlock(p[2], cfg.prompt_len, cfg.prompt_sizes[2], 8 * d)
        self.chnl_reduce1 = conv1(p[0], p[0])
        self.chnl_reduce2 = conv1(p[1], p[1])
        self.chnl_reduce3 = conv1(p[2], cfg.reduce3_out)
        self.reduce_noise_channel_1 = conv1(d + p[0], d)
        self.encoder_level1 = _stage(d, cfg.heads[0], cfg.num_blocks[0], cfg)
        self.down1_2 = Downsample(d)
        self.reduce_noise_channel_2 = conv1(2 * d + p[1], 2 * d)
        self.encoder_level2 = _stage(2 * d, cfg.heads[1], cfg.num_blocks[1], cfg)
        self.down2_3 = Downsample(2 * d)
        self.reduce_noise_channel_3 = conv1(4 * d + cfg.reduce3_out, 4 * d)
        self.encoder_level3 = _stage(4 * d, cfg.heads[2], cfg.num_blocks[2], cfg)
        self.down3_4 = Downsample(4 * d)
        self.latent = _stage(8 * d, cfg.heads[3], cfg.num_blocks[3], cfg)
        self.up4_3 = Upsample(4 * d)
        self.reduce_chan_level3 = conv1(2 * d + 4 * d, 4 * d)
        self.noise_level3 = tb(8 * d + p[2], cfg.heads[2])
        self.reduce_noise_level3 = conv1(8 * d + p[2], 4 * d)
        self.decoder_level3 = _stage(4 * d, cfg.heads[2], cfg.num_blocks[2], cfg)
        self.up3_2 = Upsample(4 * d)
        self.reduce_chan_level2 = conv1(4 * d, 2 * d)
        self.noise_level2 = tb(4 * d + p[1], cfg.heads[2])
        self.reduce_noise_level2 = conv1(4 * d + p[1], 4 * d)
        self.decoder_level2 = _stage(2 * d, cfg.heads[1], cfg.num_blocks[1], cfg)
        self.up2_1 = Upsample(2 * d)
        self.noise_level1 = tb(2 * d + p[0], cfg.heads[2])
        self.reduce_noise_level1 = conv1(2 * d + p[0], 2 * d)
        self.decoder_level1 = _stage(2 * d, cfg.heads[0], cfg.num_blocks[0], cfg)
        self.refinement = _stage(2 * d, cfg.heads[0], cfg.num_refinement_blocks, cfg)
        self.output = nn.Conv2d(2 * d, cfg.out_channels, 3, padding=1, bias=bias)
        self.set_impl(impl)

    @property
    def impl(self) -> str:
        return self._impl

    def set_impl(self, impl: Impl) -> "PromptIR":
        """Switch every submodule between the ``reference`` and ``fast`` operations."""
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; valid: {list(IMPLS)}")
        self._impl = impl
        for module in self.modules():
            if isinstance(module, _ImplMixin):
                module.impl = impl
        return self

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        enc1 = self.encoder_level1(self.patch_embed(inp_img))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))

        latent = torch.cat([latent, self.prompt3(latent)], 1)
        latent = self.reduce_noise_level3(self.noise_level3(latent))

        dec3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1))
        dec3 = self.decoder_level3(dec3)
        dec3 = torch.cat([dec3, self.prompt2(dec3)], 1)
        dec3 = self.reduce_noise_level2(self.noise_level2(dec3))

        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1))
        dec2 = self.decoder_level2(dec2)
        dec2 = torch.cat([dec2, self.prompt1(dec2)], 1)
        dec2 = self.reduce_noise_level1(self.noise_level1(dec2))

        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1))
        dec1 = self.refinement(dec1)
        return self.output(dec1) + inp_img
