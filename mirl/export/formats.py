"""One entry point for every export format, each followed by its model card.

* ``sparse``: mirl's compact file (packed bit mask + surviving values), read by ``load_checkpoint``;
* ``lightning``: the published ``.ckpt`` layout (``net.`` keys), paper preset only;
* ``onnx``: an ONNX graph with dynamic height and width;
* ``web``: a static folder whose page restores photos in the browser, offline;
* ``narrow``: a mirl checkpoint of the network with its dead channels removed (a ``refill``
  branch: a physically smaller network), read by ``load_checkpoint``, ``mirl restore`` and
  ``mirl evaluate``.

A ticket whose mask removes whole channels (a ``refill`` branch) is exported narrowed by
``onnx`` and ``web`` too (:func:`mirl.models.narrow.narrow_model`: the same function, fewer
weights and operations).

Example:
    >>> from mirl.export import export_ticket, load_ticket
    >>> result = export_ticket(load_ticket("runs/quickstart_abc/replicate_0/level_2"), "onnx", "ticket.onnx")  # doctest: +SKIP
    >>> result.card.name                                                                            # doctest: +SKIP
    'ticket.onnx.md'
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mirl import paths
from mirl.errors import MirlError

from .card import card_path, metrics_summary, model_card, sha256, write_card
from .ticket import Ticket

FORMATS: tuple[str, ...] = ("sparse", "lightning", "onnx", "web", "narrow")
DTYPES_BY_FORMAT: dict[str, tuple[str, ...]] = {
    "sparse": ("float32", "float16", "bfloat16"),
    "lightning": ("float32",),
    "onnx": ("float32", "float16"),
    "web": ("float32", "float16"),
    "narrow": ("float32",),
}


@dataclass
class ExportResult:
    """What an export wrote: the file or folder, its size, its model card, lines to print."""

    path: Path
    format: str
    bytes: int
    card: Path
    lines: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


def _check_dtype(fmt: str, dtype: str) -> None:
    allowed = DTYPES_BY_FORMAT[fmt]
    if dtype not in allowed:
        raise MirlError(f"--format {fmt} stores weights as {' or '.join(allowed)}, not {dtype!r}")


def check_out_of_studies(out: str | os.PathLike) -> None:
    """Refuse an export path inside a study folder (it could replace a level's ``model.pt`` or
    ``init.pt``, and a study holds only what ``mirl lottery`` wrote)."""
    study = paths.study_of(Path(out).resolve())
    if study is not None:
        raise MirlError(f"--out {out} is inside the study folder {study}: an export never writes into a study "
                        "(it could replace a level's model.pt or init.pt); pass a path outside it")


def check_web_tiling(tile: int, overlap: int) -> None:
    """Refuse a page tiling that is not a multiple of 8, or whose overlap is half the tile or more
    (each tile would advance by ``tile - overlap`` px: 2.8 M tiles for a 2000x1500 photo at 64/63)."""
    from .web import DEFAULT_OVERLAP, DEFAULT_TILE

    if tile < 8 or tile % 8 or not 0 <= 2 * overlap < tile:
        raise MirlError(f"--tile must be a multiple of 8 (at least 8) and --overlap from 0 to under half of --tile; got "
                        f"tile={tile}, overlap={overlap} (the defaults are --tile {DEFAULT_TILE} --overlap {DEFAULT_OVERLAP})")


def onnx_metadata(ticket: Ticket, impl: str, dtype: str = "float32") -> dict[str, str]:
    """``metadata_props`` of the ONNX model: where it came from and how pruned it is."""
    d = ticket.densities
    meta = {
        "mirl.preset": ticket.preset,
        "mirl.implementation": impl,
        "mirl.dtype": dtype,
        "mirl.density_prunable": f"{d['density_prunable']:.6f}",
        "mirl.density_trainable": f"{d['density_trainable']:.6f}",
        "mirl.source": str(ticket.checkpoint),
        "mirl.input": "image: float32 [1, 3, H, W], RGB in [0, 1], H and W multiples of 8",
    }
    if ticket.run_name:
        meta["mirl.run"] = ticket.run_name
    if ticket.level is not None:
        meta["mirl.level"] = str(ticket.level)
    if ticket.narrow:
        meta["mirl.narrowed"] = "dead channels removed (mirl.models.narrow)"
    return meta


def model_for_export(ticket: Ticket, impl: str, narrow: bool | None = None) -> Any:
    """The network an export writes: narrowed for a structured ticket (``narrow`` overrides), in eval mode."""
    import copy

    if ticket.narrow if narrow is None else narrow:
        from mirl.models.narrow import narrow_model

        model = narrow_model(ticket.model)
    else:
        model = copy.deepcopy(ticket.model)
    model.set_impl(impl)
    return model.eval()


def _narrow_text(ticket: Ticket, model: Any) -> str:
    """``narrowed: N of M parameters stored`` for a narrowed export, else ``""``."""
    if not ticket.narrow:
        return ""
    return (f"narrowed: {sum(p.numel() for p in model.parameters()):,} of {int(ticket.densities['parameters']):,} "
            "parameters stored (dead channels removed)")


def _density_text(ticket: Ticket) -> str:
    d = ticket.densities
    return f"density {d['density_prunable']:.2%} of prunable weights, {d['density_trainable']:.2%} of all"


def web_info(ticket: Ticket, dtype: str, impl: str, tile: int, overlap: int) -> dict[str, Any]:
    """The page's ``ticket.json`` (without the sizes and runtime that the folder builder adds)."""
    import mirl

    d = ticket.densities
    branch = (ticket.meta.get("metadata") or {}).get("branch")
    # as the checkpoint is usually named: runs/<study>/replicate_<r>/level_<k>/<branch>/model.pt
    name = (ticket.checkpoint.name if ticket.run_dir is None
            else ticket.checkpoint.absolute().relative_to(ticket.run_dir.absolute().parent.parent).as_posix())
    return {
        "format": "mirl.web",
        "version": 1,
        "title": f"{ticket.run_name or ticket.checkpoint.name}" + (f" level {ticket.level}" if ticket.level is not None else "")
                 + (f" {branch}" if branch not in (None, "main") else ""),
        "preset": ticket.preset,
        "impl": impl,
        "parameters": int(d["parameters"]),
        "model": {"dtype": dtype, "input": "image", "output": "restored", "opset": 18},
        "density": {"prunable": d["density_prunable"], "trainable": d["density_trainable"],
                    "nonzero_prunable": int(d["nonzero_prunable"]), "prunable_total": int(d["prunable"]),
                    "rule": ticket.rule, "mask": ticket.mask_source},
        "tiling": {"tile": int(tile), "overlap": int(overlap), "multiple": 8},
        "restore_command": f"mirl restore {name} photo.png --out restored/ --tile {tile} --overlap {overlap}",
        "metrics": metrics_summary(ticket),
        "provenance": {"run": ticket.run_name, "settings_hash": ticket.settings_hash, "level": ticket.level,
                       "checkpoint": str(name), "mirl_version": mirl.__version__,
                       "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds")},
    }


def sent_text(model: dict[str, Any]) -> str:
    """One line: the page's model bytes as sent next to the same network stored dense.

    Example:
        >>> sent_text({"sent_bytes": 124313, "weights": {"values": "float16"}, "dtype": "float32",
        ...            "dense": {"sent_bytes": 322711}})
        'model as sent 124,313 bytes (graph + bitmasks and float16 values), stored dense 322,711 (2.6x more)'
    """
    sent, dense = int(model["sent_bytes"]), int(model["dense"]["sent_bytes"])
    how = f"graph + bitmasks and {model['weights']['values']} values" if model.get("weights") else f"whole ONNX file, {model.get('dtype', 'float32')}"
    return f"model as sent {sent:,} bytes ({how}), stored dense {dense:,} ({dense / max(sent, 1):.1f}x more)"


def web_download_details(model: dict[str, Any]) -> dict[str, str]:
    """The model card's lines on the page's download: bytes as sent (gzip, as the browser fetches
    them) next to the same network stored dense, and how precise the compact weights are."""
    dense = model["dense"]
    weights = model.get("weights")
    dense_text = (f"{dense['sent_bytes']:,} bytes as sent for the same network stored dense (its whole ONNX file, every weight "
                  f"{model.get('dtype', 'float32')}, gzip; {dense['onnx_bytes']:,} unpacked)")
    if not weights:
        return {"download": f"{model['sent_bytes']:,} bytes as sent: model.onnx.gz, the whole ONNX file gzipped "
                            f"({model['onnx_bytes']:,} unpacked; pruned weights stored as zeros)"}
    ratio = dense["sent_bytes"] / max(model["sent_bytes"], 1)
    out = {
        "download": f"**{model['sent_bytes']:,} bytes as sent** (gzip, as the browser fetches them): model.onnx.gz "
                    f"{model['gzip_bytes']:,} (the graph; its weights are external data) + weights.bin.gz {weights['gzip_bytes']:,} "
                    f"(per tensor a bitmask of the kept positions and the kept values as {weights['values']}; "
                    f"{weights['kept']:,} non-zero of {weights['positions']:,} values in {weights['tensors']} tensors)",
        "dense download": f"{dense_text}: {ratio:.1f}x the compact download",
    }
    difference = weights.get("probe_max_difference")
    if weights["values"] == "float16" and model.get("dtype", "float32") == "float32":
        measured = (f"the largest change of the raw output on the probe images was {difference:.2g} "
                    f"({difference * 255:.2f} of an 8-bit level)") if difference is not None else "not measured"
        out["weight precision"] = (f"kept weights rounded to float16 for the download and computed in float32: {measured}; "
                                   "the export keeps float32 values when it exceeds half a level")
    return out


def export_ticket(
    ticket: Ticket,
    fmt: str,
    out: str | os.PathLike,
    dtype: str = "float32",
    impl: str = "fast",
    tile: int = 256,
    overlap: int = 32,
    examples: bool = True,
    onnx_file: str | os.PathLike | None = None,
) -> ExportResult:
    """Write ``ticket`` as ``fmt`` to ``out`` and its model card beside it; every file atomically.

    ``impl`` (``fast`` or ``reference``) is the implementation the ONNX graph is traced from;
    ``tile`` and ``overlap`` are the web page's default tiling. ``onnx_file`` (web only) builds
    the page around an ONNX file exported earlier from the same ticket instead of exporting again;
    one forward pass checks that it computes this ticket's function.
    """
    if fmt not in FORMATS:
        raise MirlError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if onnx_file is not None and fmt != "web":
        raise MirlError("--onnx only applies to --format web (it reuses an ONNX file for the page)")
    _check_dtype(fmt, dtype)
    check_out_of_studies(out)
    out = Path(out)
    source_bytes = os.path.getsize(ticket.checkpoint)
    if fmt == "sparse":
        from mirl.models.sparse import export_sparse

        widths = getattr(ticket.model, "narrow_widths", None)  # a narrowed network: its widths go along
        size = _write_verified(out, lambda tmp: export_sparse(tmp, ticket.state_dict(), ticket.mask, ticket.meta["config"], dtype,
                                                              {"source": str(ticket.checkpoint), **ticket.meta["metadata"]}, widths),
                               lambda tmp: _loads_as(tmp, ticket.model))
        lines = [f"wrote {out}: {size:,} bytes ({size / source_bytes:.1%} of {ticket.checkpoint.name}, {source_bytes:,} bytes)"]
        details = {"format": "mirl.sparse (load_checkpoint densifies it)", "value dtype": dtype, "bytes": f"{size:,}", "sha256": sha256(out)}
    elif fmt == "lightning":
        from mirl.models.narrow import is_narrowed

        from .lightning import EXTRA_KEYS, PUBLISHED_PRESET, export_lightning

        if is_narrowed(ticket.model):
            raise MirlError(f"{ticket.checkpoint}: a narrowed network (dead channels removed) cannot be written as a Lightning "
                            "checkpoint: MIR-L's code builds PromptIR at its full widths and would refuse the narrowed tensors; "
                            "export the full-size (masked) checkpoint it was narrowed from, or use --format narrow, sparse or onnx")
        size = _write_verified(out, lambda tmp: export_lightning(tmp, ticket.state_dict(), ticket.preset, str(ticket.checkpoint)),
                               lambda tmp: _loads_as(tmp, ticket.model, PUBLISHED_PRESET))
        lines = [f"wrote {out}: {size:,} bytes, Lightning layout (state_dict with net. keys; {_density_text(ticket)})"]
        details = {"format": "PyTorch Lightning checkpoint (torch.save; loads with weights_only=True)",
                   "dtype": "float32", "bytes": f"{size:,}", "sha256": sha256(out),
                   "lightning_keys": ["state_dict", *EXTRA_KEYS]}
    elif fmt == "onnx":
        from .onnx_model import OPSET, export_onnx

        model = model_for_export(ticket, impl)
        size = _write_verified(out, lambda tmp: export_onnx(tmp, model, dtype, onnx_metadata(ticket, impl, dtype)),
                               lambda tmp: _runs_as(tmp.read_bytes(), model, dtype, tmp))
        narrowed = _narrow_text(ticket, model)
        lines = [f"wrote {out}: {size:,} bytes, ONNX opset {OPSET}, {dtype} weights ({_density_text(ticket)}"
                 + (f"; {narrowed}" if narrowed else "") + ")"]
        details = {"format": f"ONNX, opset {OPSET}, input `image` [1, 3, H, W] (H, W multiples of 8), output `restored`",
                   "weights": dtype + (" (cast to float32 inside the graph: computation stays float32)" if dtype == "float16" else ""),
                   "bytes": f"{size:,}", "sha256": sha256(out),
                   "implementation": f"traced from mirl's `{impl}` implementation (same function as the published operations)"}
        if narrowed:
            details["network"] = narrowed
    elif fmt == "narrow":
        from mirl.models import save_checkpoint
        from mirl.models.narrow import narrow_model

        model = narrow_model(ticket.model).eval()  # any ticket: an unstructured one has few whole dead channels

        def write(tmp: Path) -> int:
            save_checkpoint(tmp, model, metadata={"source": str(ticket.checkpoint), **ticket.meta["metadata"]})
            return os.path.getsize(tmp)

        size = _write_verified(out, write, lambda tmp: _loads_as(tmp, model))
        narrowed = (f"{sum(p.numel() for p in model.parameters()):,} of {int(ticket.densities['parameters']):,} parameters "
                    "stored (dead channels removed" + ("" if ticket.narrow else "; an unstructured ticket has few") + ")")
        lines = [f"wrote {out}: {size:,} bytes, narrowed network: {narrowed}; {_density_text(ticket)}"]
        details = {"format": "mirl checkpoint of the narrowed network (its widths recorded; load_checkpoint rebuilds it "
                             "with weights_only=True)", "network": narrowed, "bytes": f"{size:,}", "sha256": sha256(out)}
    else:
        return _export_web(ticket, out, dtype, impl, tile, overlap, examples, onnx_file)
    card_file = write_card(ticket, fmt, out, details)
    return ExportResult(out, fmt, size, card_file, lines + [f"model card: {card_file}"])


def _export_web(ticket: Ticket, out: Path, dtype: str, impl: str, tile: int, overlap: int, examples: bool,
                onnx_file: str | os.PathLike | None) -> ExportResult:
    from mirl.fileio import atomic_write_text

    from .onnx_model import onnx_bytes, reuse_onnx
    from .web import CARD_FILE, build_web_folder, check_target, folder_size

    check_web_tiling(tile, overlap)
    check_target(out)
    if onnx_file is not None:
        data, found = reuse_onnx(onnx_file, ticket.model)
        dtype, impl = found.get("mirl.dtype", dtype), found.get("mirl.implementation", impl)
    else:
        data = onnx_bytes(model_for_export(ticket, impl), dtype, onnx_metadata(ticket, impl, dtype), browser=True)
    details = {"format": "static web folder: index.html, model.onnx.gz and weights.bin.gz, onnxruntime-web (WebAssembly)",
               "weights": dtype, "tiling": f"tiles of {tile} px, overlap {overlap} px (as mirl restore --tile {tile} --overlap {overlap})",
               "implementation": f"ONNX graph traced from mirl's `{impl}` implementation"}
    info = web_info(ticket, dtype, impl, tile, overlap)
    if ticket.narrow:  # what the narrowing buys where the page runs, measured here on this machine's CPU
        from .speed import speed_against_dense, speed_text

        model, dense = model_for_export(ticket, impl), model_for_export(ticket, impl, narrow=False)
        info["speed"] = speed_against_dense(data, onnx_bytes(dense, dtype, browser=onnx_file is None), model, dense)
        details["speed"] = speed_text(info["speed"])
    page_model = model_for_export(ticket, impl)
    record = build_web_folder(out, data, info, "", examples, check=lambda folder: _check_page(folder, out, page_model))
    details.update(web_download_details(record["model"]))
    details["compact"] = bool(record["model"].get("weights"))
    atomic_write_text(out / CARD_FILE, model_card(ticket, "web", out, details))
    size = folder_size(out)
    lines = [f"wrote {out}/: {size:,} bytes in all; {sent_text(record['model'])}; {_density_text(ticket)}",
             f"open it: mirl serve {out}   (or: cd {out} && python -m http.server 8000, then http://localhost:8000/)"]
    card_file = write_card(ticket, "web", out, details)
    return ExportResult(out, "web", size, card_file, lines + [f"model card: {card_file}"], record)


# ---- every export is read back by its own loader before it is reported as written -----------------


def _write_verified(out: Path, write: Callable[[Path], int], check: Callable[[Path], None]) -> int:
    """``write`` a temporary beside ``out``, ``check`` it with the loader its users use, and only
    then rename it to ``out``: an export that does not load back is a :class:`MirlError` naming
    ``out``, and leaves ``out`` (and any earlier file there) as it was. Returns ``write``'s size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")  # the pattern stale clean-ups know
    os.close(fd)
    tmp = Path(name)
    try:
        size = write(tmp)
        try:
            check(tmp)
        except MirlError as exc:
            why = str(exc).replace(str(tmp), out.name).split(". If the file holds")[0]
            raise MirlError(f"{out}: the export does not load back, so it was not written ({why}); "
                            "this is a mirl bug: please report it") from None
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return size


def _loads_as(path: Path, model: Any, config: str | None = None) -> None:
    """``load_checkpoint`` reads ``path`` (as ``config``, if given) into a network of ``model``'s
    shapes (a narrowed one for a narrowed ``model``)."""
    from mirl.models import load_checkpoint

    loaded, _ = load_checkpoint(path, config=config)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in loaded.state_dict().items()}
    if got != want:
        differ = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        raise MirlError(f"{path} loads as another network than the one exported ({len(differ)} tensors differ, e.g. {differ[:3]})")


def _runs_as(data: bytes, model: Any, dtype: str, where: Any) -> None:
    """onnxruntime loads the ONNX ``data`` and, on a 32 x 32 input, computes ``model``'s function
    (within float16 rounding for float16 weights)."""
    import numpy as np
    import torch

    from .onnx_model import INPUT_NAME, inference_session

    try:
        session = inference_session(data, threads=1)
        x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        got = session.run(None, {INPUT_NAME: x.numpy()})[0]
    except Exception as exc:  # onnxruntime raises its own types for graphs it cannot load or run
        raise MirlError(f"{where}: onnxruntime cannot run it ({(str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]})") from None
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    tolerance = 2e-2 if dtype == "float16" else 1e-3
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not diff <= tolerance:
        raise MirlError(f"{where}: computes another function than the exported network (max difference {diff:.3g}, "
                        f"output {list(got.shape)} for {list(expected.shape)})")


def _check_page(folder: Path, out: Path, model: Any) -> None:
    """The page's network in ``folder``, as the page assembles it (graph + compact weights), runs
    and computes ``model``'s function; if not, the error names ``out``, which is left as it was."""
    from .compact import page_onnx

    try:
        _runs_as(page_onnx(folder), model, "float16", out)  # the page may ship float16 values: float16's tolerance
    except MirlError as exc:
        raise MirlError(f"{out}: the web export does not load back, so it was not written ({exc}); this is a mirl bug: "
                        "please report it") from None


__all__ = ["DTYPES_BY_FORMAT", "ExportResult", "FORMATS", "card_path", "check_out_of_studies", "check_web_tiling", "export_ticket",
           "model_for_export", "onnx_metadata", "sent_text", "web_download_details", "web_info"]
