"""The model card written beside every export: what the file is, how good, where from, how to load.

``FILE.md`` beside ``FILE`` (``ticket.onnx`` -> ``ticket.onnx.md``; a web folder ``site/`` ->
``site.md``, with a copy inside as ``site/model_card.md``). It holds the preset and the
implementation, the densities (prunable and trainable), the level's scores with their metric
convention and data set (and whether that is the built-in demo corpus), the run name, settings
hash and mask level, and how to load the file in mirl, in the published code and in onnxruntime.

Example:
    >>> card_path("exports/ticket.onnx").as_posix()
    'exports/ticket.onnx.md'
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

from mirl.fileio import atomic_write_text

from .ticket import Ticket

FORMAT_TITLES: dict[str, str] = {
    "sparse": "mirl sparse export (packed bit mask + surviving values)",
    "lightning": "PyTorch Lightning checkpoint in the published MIR-L / PromptIR layout",
    "onnx": "ONNX model (opset 18, dynamic height and width)",
    "web": "static web page that restores photos offline (onnxruntime-web)",
    "narrow": "mirl checkpoint of the narrowed network (dead channels removed, widths recorded)",
}


def card_path(export_path: str | os.PathLike) -> Path:
    """Where the card of an export goes: the export's path with ``.md`` appended."""
    path = Path(export_path)
    return path.with_name(path.name.rstrip("/") + ".md")


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _demo_corpus(ticket: Ticket) -> bool | None:
    if ticket.run_config is None:
        return None
    from mirl.data.resolve import uses_builtin_corpus

    return uses_builtin_corpus(ticket.run_config)


def metrics_summary(ticket: Ticket) -> dict[str, Any] | None:
    """The level's scores with their convention and data set, or ``None`` when none were recorded."""
    m = ticket.metrics
    if not m or "mean_psnr" not in m:
        return None
    from mirl.scoring.metrics import CONVENTIONS

    convention = str(m.get("convention", "upstream"))
    data = (ticket.run_config or {}).get("data", "unknown")
    return {
        "convention": convention,
        "convention_text": CONVENTIONS.get(convention, "see mirl.scoring.metrics"),
        "mean_psnr": float(m["mean_psnr"]),
        "mean_ssim": float(m["mean_ssim"]),
        "mean_input_psnr": sum(float(v.get("input_psnr", float("nan"))) for v in (m.get("tasks") or {}).values())
                           / max(1, len(m.get("tasks") or {})),
        "tasks": {k: {"psnr": float(v["psnr"]), "ssim": float(v["ssim"]), "images": v.get("images"),
                      "input_psnr": float(v.get("input_psnr", float("nan")))}
                  for k, v in (m.get("tasks") or {}).items()},
        "test_crop": m.get("test_crop"),
        "max_test_side": (ticket.run_config or {}).get("max_test_side") or None,
        "data": str(data),
        "demo_corpus": bool(_demo_corpus(ticket)),
    }


def _fmt_density(ticket: Ticket) -> list[str]:
    d = ticket.densities
    return [
        f"- prunable weights ({ticket.rule} rule): **{d['density_prunable']:.2%}** kept "
        f"({d['nonzero_prunable']:,} of {d['prunable']:,} non-zero)",
        f"- all trainable parameters: **{d['density_trainable']:.2%}** "
        f"(non-prunable parameters, e.g. the prompts, count as kept; {d['parameters']:,} parameters)",
        f"- mask: {ticket.mask_source}; pruned weights are stored as zeros",
    ]


def _fmt_metrics(ticket: Ticket) -> list[str]:
    s = metrics_summary(ticket)
    if s is None:
        return ["No scores recorded: the source is not a level folder of a mirl study (no metrics.json). "
                "Score it with `mirl evaluate`."]
    where = ("the **built-in demo corpus** (15 photos shipped in Python wheels): a demonstration, not a benchmark; "
             "never compare these numbers with the paper's") if s["demo_corpus"] else f"data set `{s['data']}`"
    test = [f"test images: {s['test_crop']}"] if s.get("test_crop") else []
    if s.get("max_test_side"):
        test.append(f"test photos cropped to at most {s['max_test_side']} px a side")
    lines = [
        f"Measured by `mirl lottery` on {where}.",
        f"Metric convention `{s['convention']}`: {s['convention_text']}" + (f"; {'; '.join(test)}" if test else "") + ".",
        "",
        "Every score is read against the degraded input's own PSNR: a gain below 0 means the ticket makes images worse.",
        "",
        "| task | PSNR (dB) | degraded input PSNR (dB) | gain (dB) | SSIM | test images |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {task} | {v['psnr']:.2f} | {v['input_psnr']:.2f} | {v['psnr'] - v['input_psnr']:+.2f} | {v['ssim']:.4f} | "
              f"{v.get('images') if v.get('images') is not None else '?'} |" for task, v in s["tasks"].items()]
    lines.append(f"| **mean** | **{s['mean_psnr']:.2f}** | {s['mean_input_psnr']:.2f} | "
                 f"**{s['mean_psnr'] - s['mean_input_psnr']:+.2f}** | **{s['mean_ssim']:.4f}** | |")
    return lines


def _fmt_loading(fmt: str, name: str, ticket: Ticket, details: Mapping[str, Any]) -> list[str]:
    published_ok = ticket.preset == "paper"
    compact = fmt == "web" and bool(details.get("compact"))
    mirl_lines = ["```python", "from mirl.models import load_checkpoint"]
    if fmt in ("sparse", "lightning", "narrow"):
        mirl_lines += [f'model, meta = load_checkpoint("{name}")   # weights_only=True', "```",
                       f"or on the command line: `mirl restore {name} photo.jpg --out restored/ --tile 512`."]
    else:
        mirl_lines += [f'model, meta = load_checkpoint("{ticket.checkpoint}")   # the checkpoint this file was exported from',
                       "```", "mirl reads checkpoints, not ONNX; the ONNX graph computes the same function (tested within 1e-4)"
                       + ("; the page's weights are rounded to float16 for the download when that keeps its output within "
                          "half an 8-bit level of the float32 network on the export's probe images (see File above)." if compact else ".")]
    if fmt == "lightning":
        from .lightning import EXTRA_KEYS

        keys = ", ".join(f"`{k}` ({EXTRA_KEYS[k]!r})" if k in EXTRA_KEYS else f"`{k}`" for k in details.get("lightning_keys", []))
        published = [
            "The file holds only " + keys + ": every network weight under `state_dict` with the prefix `net.` "
            "(pruned weights are zeros); the Lightning version recorded is past every checkpoint migration Lightning "
            "would otherwise run, so `load_from_checkpoint` reads the file as it is. No optimizer state: the file "
            "evaluates and fine-tunes, it does not resume a Trainer.",
            "",
            "```python",
            "# in the MIR-L / PromptIR repository (test.py)",
            f'checkpoint = torch.load("{name}", map_location="cpu")',
            "model = MIRLModel(opt)   # PromptIRModel() in PromptIR's test.py",
            'model.load_state_dict(checkpoint["state_dict"])   # strict: every key and shape matches',
            f'# or with Lightning: MIRLModel.load_from_checkpoint("{name}", opt=opt)',
            "```",
        ]
    elif published_ok:
        published = [f"Convert it first: `mirl export {ticket.checkpoint} --format lightning --out ticket.ckpt`, "
                     "then load `ticket.ckpt` with `MIRLModel(opt).load_state_dict(torch.load(...)['state_dict'])`."]
    else:
        published = [f"Not possible: the published code builds only the `paper` architecture, and this network is "
                     f"preset `{ticket.preset}`."]
    if fmt in ("onnx", "web"):
        onnx_name = name if fmt == "onnx" else f"{name}/model.onnx.gz (gunzip it first)"
        if compact:
            onnx_name = (f"{name}/model.onnx.gz holds only the graph; its weights are in {name}/weights.bin.gz (bitmasks and "
                         "kept values). Rebuild one ONNX file with "
                         f"`python -c \"from mirl.export.compact import page_onnx; open('model.onnx', 'wb').write(page_onnx('{name}'))\"`")
        ort_lines = [
            "Input `image`: float32 `[1, 3, H, W]`, RGB in [0, 1], H and W multiples of 8 (pad with reflection); "
            "output `restored`, same shape, not clamped. For large photos restore in overlapping tiles as `mirl restore` does.",
            "",
            "```python",
            "import numpy as np, onnxruntime as ort",
            f'session = ort.InferenceSession("{name if fmt == "onnx" else "model.onnx"}", providers=["CPUExecutionProvider"])',
            'x = np.random.rand(1, 3, 256, 256).astype(np.float32)',
            'restored = np.clip(session.run(None, {"image": x})[0], 0, 1)',
            "```",
            f"File: {onnx_name}.",
        ]
    else:
        ort_lines = [f"Export it: `mirl export {ticket.checkpoint} --format onnx --out ticket.onnx` (add `--dtype float16` "
                     "for half the size), then load `ticket.onnx` with `onnxruntime.InferenceSession`."]
    lines = ["### In mirl", "", *mirl_lines, "", "### In the published code (MIR-L / PromptIR)", "", *published, "",
             "### In onnxruntime", "", *ort_lines]
    if fmt == "web":
        lines += ["", "### In a browser", "",
                  f"Serve the folder over HTTP: `cd {name} && python -m http.server 8000`, or `mirl serve {name}` "
                  "(which also sends the headers that let the runtime use every core), and open http://localhost:8000/. "
                  "Opening `index.html` from disk does not work (browsers block modules and WebAssembly on `file://`). "
                  "Nothing is fetched from outside the folder; any static web host can serve it."]
    return lines


def model_card(ticket: Ticket, fmt: str, export_path: str | os.PathLike, details: Mapping[str, Any] | None = None) -> str:
    """The Markdown model card of one export. ``details`` adds format facts (dtype, sizes, keys)."""
    import mirl

    details = dict(details or {})
    path = Path(export_path)
    name = path.name
    title_bits = [ticket.run_name or ticket.checkpoint.name]
    if ticket.level is not None:
        title_bits.append(f"level {ticket.level}")
    lines = [
        f"# Model card: {' '.join(title_bits)} ({ticket.preset})",
        "",
        f"`{name}`: {FORMAT_TITLES.get(fmt, fmt)}, written by `mirl export --format {fmt}` "
        f"(mirl {mirl.__version__}) on {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}.",
        "",
        "## File",
        "",
    ]
    for key, value in details.items():
        if key in ("lightning_keys", "implementation", "compact"):
            continue
        lines.append(f"- {key}: {value}")
    lines += [
        "",
        "## Network",
        "",
        f"- PromptIR (decoder prompts, as MIR-L), preset **{ticket.preset}**"
        + (" (the published architecture)" if ticket.preset == "paper" else " (not the published architecture)"),
        f"- configuration: `{ticket.meta['config']}`",
        f"- implementation: {details.get('implementation', 'weights only: both mirl implementations (reference, fast) read them')}",
        "",
        "## Density",
        "",
        *_fmt_density(ticket),
        "",
        "## Scores",
        "",
        *_fmt_metrics(ticket),
        "",
        "## Provenance",
        "",
        f"- source checkpoint: `{ticket.checkpoint}` (format {ticket.meta['format']})",
        f"- study run: `{ticket.run_name}`, settings hash `{ticket.settings_hash}`" if ticket.run_name
        else "- study run: unknown (the source is not inside a mirl run folder)",
        f"- mask level: {ticket.level}" if ticket.level is not None else "- mask level: unknown",
    ]
    if ticket.run_config and ticket.run_config.get("non_default"):
        settings = ", ".join(f"{k}={v}" for k, v in ticket.run_config["non_default"].items())
        lines.append(f"- settings that differ from the published ones: {settings}")
    lines += ["", "## How to load it", "", *_fmt_loading(fmt, name, ticket, details), ""]
    return "\n".join(lines)


def write_card(ticket: Ticket, fmt: str, export_path: str | os.PathLike, details: Mapping[str, Any] | None = None) -> Path:
    """Write ``FILE.md`` beside the export atomically; return its path."""
    target = card_path(export_path)
    atomic_write_text(target, model_card(ticket, fmt, export_path, details))
    return target


__all__ = ["FORMAT_TITLES", "card_path", "metrics_summary", "model_card", "sha256", "write_card"]
