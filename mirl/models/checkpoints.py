"""Read and write PromptIR checkpoints safely.

Formats read by :func:`load_checkpoint`:

* Lightning ``.ckpt`` files published with MIR-L and PromptIR: a dict with ``state_dict`` whose
  keys carry the prefix ``net.``; the architecture is inferred from the tensor shapes;
* plain state dicts (optionally with the ``module.`` prefix of DistributedDataParallel);
* mirl checkpoints (``format: mirl.checkpoint``), which record their configuration;
* mirl sparse exports (``format: mirl.sparse``), densified on load.

Loading always uses ``torch.load(..., weights_only=True)``. A file that needs arbitrary
unpickling is refused unless ``allow_pickle=True`` is passed explicitly.

Example:
    >>> import tempfile, os
    >>> from mirl.models import build_model, save_checkpoint, load_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.pt")
    >>> save_checkpoint(path, build_model("tiny"), metadata={"note": "demo"})
    >>> model, meta = load_checkpoint(path)
    >>> meta["preset"], meta["format"]
    ('tiny', 'mirl.checkpoint')
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from mirl.errors import MirlError
from mirl.fileio import atomic_torch_save

from .config import MODEL_PRESETS, PARAMETER_BUDGET_FACTOR, ModelConfig, parameter_budget, parameter_count, preset, preset_name
from .promptir import PromptIR
from .sparse import SPARSE_FORMAT, densify

MIRL_FORMAT = "mirl.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(MirlError, ValueError):
    """A checkpoint could not be read or does not fit the network; the message says why."""


def save_checkpoint(
    path: str | os.PathLike,
    model: PromptIR,
    metadata: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write a mirl checkpoint that :func:`load_checkpoint` reads with no other argument.

    ``metadata`` must hold only plain values (str, int, float, bool, None, lists, dicts), so the
    file stays loadable with ``weights_only=True``. A narrowed network (:mod:`mirl.models.narrow`)
    records its widths (``narrow``: unit name -> channels per head), from which it is rebuilt.
    """
    sd = state_dict if state_dict is not None else model.state_dict()
    payload = {
        "format": MIRL_FORMAT,
        "version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in sd.items()},
        "metadata": dict(metadata or {}),
    }
    widths = getattr(model, "narrow_widths", None)
    if widths is not None:
        payload["narrow"] = {str(k): int(v) for k, v in widths.items()}
    atomic_torch_save(payload, path)


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format (a zip archive)
PICKLE_PROTOCOLS = range(2, 6)  # the legacy format: a bare pickle starting with b"\x80" + protocol


def _looks_like_torch_file(head: bytes) -> bool:
    """True for the first bytes of a ``torch.save`` file: a zip archive or a pickle."""
    return head.startswith(ZIP_MAGIC) or (len(head) >= 2 and head[0] == 0x80 and head[1] in PICKLE_PROTOCOLS)


def read_checkpoint_file(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", allow_pickle: bool = False
) -> Any:
    """``torch.load`` with ``weights_only=True`` and one-line errors for unreadable files.

    A file that is not a ``torch.save`` file at all (random bytes, an image) is called that, and
    only a file that really holds Python objects beyond tensors is said to need ``allow_pickle``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not _looks_like_torch_file(head):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (it starts with bytes {head!r}, not a torch.save zip archive or pickle); "
            "check the file name, or re-download the file"
        )
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols is noise to a user
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if not allow_pickle and "GLOBAL" in text:
            culprit = next((line.strip() for line in text.splitlines() if "GLOBAL" in line), text.strip())
            raise CheckpointError(
                f"{path}: refusing to load, the file needs arbitrary unpickling ({culprit[:160]}). "
                "Only if you trust its source, pass allow_pickle=True (CLI: --allow-pickle)."
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (damaged, or not a checkpoint): {_first_line(text)}") from None
    except Exception as exc:  # torch raises many types for damaged files; all mean the same here
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or another file type?): {_first_line(str(exc)) or type(exc).__name__}"
        ) from None


def _first_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:limit] if lines else ""


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _add_narrow(info: dict[str, Any], obj: Mapping[str, Any], source: str) -> None:
    """Copy a narrowed network's recorded widths (mirl checkpoints and sparse exports) into ``info``."""
    if obj.get("narrow") is None:
        return
    if not isinstance(obj["narrow"], Mapping):
        raise CheckpointError(f"{source}: its narrowed widths are not a mapping of unit names to channel counts; "
                              "the file is damaged: export it again")
    info["narrow"] = dict(obj["narrow"])


def extract_state_dict(obj: Any, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a loaded checkpoint object into ``(state_dict, info)``.

    ``info`` has ``format`` and, for mirl files, ``config`` and ``metadata``.
    """
    if isinstance(obj, Mapping) and obj.get("format") == MIRL_FORMAT:
        info = {
            "format": MIRL_FORMAT,
            "config": obj.get("config"),
            "metadata": dict(obj.get("metadata") or {}),
        }
        _add_narrow(info, obj, source)
        return dict(obj["state_dict"]), info
    if isinstance(obj, Mapping) and obj.get("format") == SPARSE_FORMAT:
        try:
            state, mask = densify(obj, source)
        except MirlError as exc:
            raise CheckpointError(str(exc)) from None
        info = {
            "format": SPARSE_FORMAT,
            "config": obj.get("config"),
            "metadata": dict(obj.get("metadata") or {}),
            "mask": mask,
        }
        _add_narrow(info, obj, source)
        return state, info
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        state = obj["state_dict"]
        if any(k.startswith("net.") for k in state):
            stripped = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
            others = sorted(k for k in state if not k.startswith("net."))
            meta = {"epoch": obj.get("epoch"), "global_step": obj.get("global_step")}
            if others:
                meta["non_network_keys"] = others
            return stripped, {"format": "lightning", "metadata": meta}
        return _strip_prefix(state, "module."), {"format": "state_dict", "metadata": {}}
    if _is_tensor_dict(obj):
        return _strip_prefix(obj, "module."), {"format": "state_dict", "metadata": {}}
    kind = type(obj).__name__
    keys = list(obj)[:5] if isinstance(obj, Mapping) else []
    raise CheckpointError(
        f"{source}: not a PromptIR checkpoint (top level is a {kind}"
        + (f" with keys {keys}" if keys else "")
        + "); expected a Lightning .ckpt, a state dict or a mirl checkpoint"
    )


def _count_indices(state: Mapping[str, Any], stage: str) -> int:
    pattern = re.compile(rf"^{re.escape(stage)}\.(\d+)\.")
    return len({int(m.group(1)) for k in state if (m := pattern.match(k))})


def infer_config(state: Mapping[str, torch.Tensor]) -> ModelConfig | None:
    """Infer the architecture from tensor shapes; ``None`` when the keys are not PromptIR's."""
    try:
        embed = state["patch_embed.proj.weight"]
        dim = int(embed.shape[0])
        stages = ("encoder_level1", "encoder_level2", "encoder_level3", "latent")
        blocks = tuple(_count_indices(state, s) for s in stages)
        heads = tuple(int(state[f"{s}.0.attn.temperature"].shape[0]) for s in stages)
        hidden = int(state["encoder_level1.0.ffn.project_out.weight"].shape[1])
        prompts = [state[f"prompt{i}.prompt_param"] for i in (1, 2, 3)]
        prompt_dims = tuple(int(p.shape[2]) for p in prompts)
        reduce3 = int(state["chnl_reduce3.weight"].shape[0])
        ffn = 2.66 if int(dim * 2.66) == hidden else hidden / dim
        return ModelConfig(
            dim=dim,
            num_blocks=blocks,  # type: ignore[arg-type]
            num_refinement_blocks=_count_indices(state, "refinement"),
            heads=heads,  # type: ignore[arg-type]
            ffn_expansion_factor=ffn,
            prompt_dims=prompt_dims,  # type: ignore[arg-type]
            prompt_len=int(prompts[0].shape[1]),
            prompt_sizes=tuple(int(p.shape[3]) for p in prompts),  # type: ignore[arg-type]
            inp_channels=int(embed.shape[1]),
            out_channels=int(state["output.weight"].shape[0]),
            bias="patch_embed.proj.bias" in state,
            chnl_reduce3_out=None if reduce3 == 2 * prompt_dims[1] else reduce3,
        )
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        return None


def recorded_config(values: Any, source: str) -> ModelConfig:
    """The :class:`ModelConfig` a file records, or a one-line :class:`CheckpointError` naming the
    file: its settings are as untrusted as its tensors (a 1 MB file can ask for a terabyte network)."""
    try:
        return ModelConfig.from_dict(values)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: the network settings recorded in the file are invalid ({_first_line(str(exc), 240)}); "
                              f"the file is damaged: export it again, or name its size (CLI: --model "
                              f"{'|'.join(MODEL_PRESETS)})") from None


def check_budget(cfg: ModelConfig, source: str) -> None:
    """Refuse a configuration whose network would have more than :func:`parameter_budget`
    parameters (counted on the ``meta`` device, before any memory is allocated)."""
    count, budget = parameter_count(cfg), parameter_budget()
    if count > budget:
        raise CheckpointError(
            f"{source}: its network settings (dim {cfg.dim}, num_blocks {list(cfg.num_blocks)}, prompt_dims "
            f"{list(cfg.prompt_dims)}) make a PromptIR of {count:,} parameters, more than {budget:,} "
            f"({PARAMETER_BUDGET_FACTOR}x the paper model); the file is damaged or not a mirl checkpoint: export it again"
        )


def _describe(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def state_dict_mismatch(model: PromptIR, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """``(missing, unexpected, wrong_shape)`` keys of ``state`` against ``model``'s own."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {list(state[k].shape)} (model {list(expected[k])})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != expected[k]
    )
    return missing, unexpected, wrong


def check_state_dict(model: PromptIR, state: Mapping[str, torch.Tensor], assumed: str, source: str) -> None:
    """Raise :class:`CheckpointError` listing missing, unexpected and mis-shaped keys."""
    missing, unexpected, wrong = state_dict_mismatch(model, state)
    if missing or unexpected or wrong:
        parts = [
            f"{len(missing)} missing: {_describe(missing)}" if missing else "",
            f"{len(unexpected)} unexpected: {_describe(unexpected)}" if unexpected else "",
            f"{len(wrong)} with the wrong shape: {_describe(wrong)}" if wrong else "",
        ]
        raise CheckpointError(
            f"{source}: does not fit PromptIR preset {assumed}; "
            + "; ".join(p for p in parts if p)
            + f". If the file holds another PromptIR size, name it (CLI: --model {'|'.join(MODEL_PRESETS)}; "
            "Python: load_checkpoint(path, config=...)); otherwise the file is incomplete or not a PromptIR/MIR-L checkpoint."
        )


def _mismatch(cfg: ModelConfig, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = PromptIR(cfg)
    return state_dict_mismatch(model, state)


def closest_preset(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """The model preset whose keys and shapes differ least from ``state`` (for error messages
    about incomplete files, so that they name the keys that are really missing)."""
    return min(MODEL_PRESETS.values(), key=lambda cfg: sum(map(len, _mismatch(cfg, state))))


def non_finite_tensors(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in ``state`` that hold NaN or infinity.

    Example:
        >>> non_finite_tensors({"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])})
        ['b']
    """
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity: a network made of them can only output garbage,
    and its "scores" (PSNR ``inf``, SSIM ``nan``) would look perfect."""
    bad = non_finite_tensors(state)
    if bad:
        counts = [f"{k} ({int((~torch.isfinite(state[k])).sum()):,} of {state[k].numel():,})" for k in bad]
        raise CheckpointError(
            f"{source}: {len(bad)} tensor(s) hold NaN or infinite values: {_describe(counts)}. "
            "The weights are broken (training diverged, or the file was damaged); use an earlier checkpoint "
            "or re-train with a smaller learning rate."
        )


def _build(cfg: ModelConfig, narrow: Any, impl: str, source: str) -> PromptIR:
    """The network of ``cfg``, narrowed to ``narrow``'s widths when the file records them."""
    if narrow is None:
        return PromptIR(cfg, impl=impl)  # type: ignore[arg-type]
    from .narrow import build_narrow_model

    try:
        return build_narrow_model(cfg, narrow, impl=impl, source=source)
    except MirlError as exc:
        raise CheckpointError(str(exc)) from None


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    allow_pickle: bool = False,
    config: ModelConfig | str | None = None,
    impl: str = "fast",
) -> tuple[PromptIR, dict[str, Any]]:
    """Load a checkpoint of any supported format into a new :class:`PromptIR`.

    Returns ``(model, metadata)``; metadata has ``format``, ``preset`` (name or ``"custom"``),
    ``config`` (dict), ``path`` and the file's own ``metadata``. ``config`` overrides the
    recorded or inferred architecture.

    Example:
        >>> model, meta = load_checkpoint("runs/quickstart_abc/level_3/model.pt")  # doctest: +SKIP
    """
    source = str(path)
    obj = read_checkpoint_file(path, map_location=map_location, allow_pickle=allow_pickle)
    state, info = extract_state_dict(obj, source)
    if config is not None:
        cfg, how = (preset(config) if isinstance(config, str) else config), "given"
    elif info.get("config"):
        cfg, how = recorded_config(info["config"], source), "recorded in the file"
    else:
        inferred = infer_config(state)
        if inferred is not None and not any(_mismatch(inferred, state)):
            cfg, how = inferred, "inferred from shapes"
        else:  # incomplete or foreign: compare with the nearest preset so the message names what is really missing
            cfg, how = closest_preset(state), "the closest preset; the file's keys fit no architecture"
    check_budget(cfg, source)
    name = preset_name(cfg) or "custom"
    narrow = info.get("narrow")
    if narrow is not None:  # a narrowed network: rebuilt from its recorded widths
        how += ", narrowed to its recorded widths"
    # shapes first, on the meta device: nothing is allocated until the file's tensors fit the network
    with torch.device("meta"):
        skeleton = _build(cfg, narrow, impl, source)
    check_state_dict(skeleton, state, f"{name!r} ({how})", source)
    check_finite(state, source)
    model = _build(cfg, narrow, impl, source)
    model.load_state_dict(state)
    model.to(map_location)
    meta: dict[str, Any] = {
        "path": source,
        "format": info["format"],
        "preset": name,
        "config": cfg.to_dict(),
        "metadata": info.get("metadata", {}),
    }
    if "mask" in info:
        meta["mask"] = info["mask"]
    if "narrow" in info:
        meta["narrow"] = dict(info["narrow"])
    return model, meta
