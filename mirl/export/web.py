"""A static web folder that restores photos offline with a ticket, in the browser.

Layout of the folder (everything the page fetches is inside it)::

    index.html  app.js  restore.js  png.js  weights.js    the page (mirl/templates/web)
    check.js  style.css
    ticket.json                                           facts the page shows, tiling settings, the
                                                          SHA-256 of the model and of its weights, and
                                                          the manifest (``files``: what the export wrote)
    model.onnx.gz                                         the ticket's ONNX graph, gzipped; its weights
                                                          are external data (mirl.export.compact)
    weights.bin.gz                                        the weights: per tensor a bitmask of the kept
                                                          positions and the kept values (float16)
    model_card.md                                         the model card
    examples/*.png                                        degraded test photos of the demo corpus
    ort/ort.wasm.min.mjs  ort/ort-wasm-simd-threaded.mjs  onnxruntime-web (vendored from npm by setup)
    ort/ort-wasm-simd-threaded.wasm.gz                    its WebAssembly binary, gzipped

The page gunzips the model and the runtime with ``DecompressionStream``, rebuilds the weights from
the bitmasks and values (``weights.js``) and hands them to onnxruntime-web as the graph's external
data, restores in overlapping tiles exactly as ``mirl restore`` does, and needs an HTTP server (``python -m http.server`` or
``mirl serve``): browsers load neither modules nor WebAssembly from ``file://``. With
``compact=False`` the folder holds the whole ONNX file in ``model.onnx.gz`` (every weight dense, as
before the compact weights) and no ``weights.bin.gz``.

Nothing the page reads from its folder is trusted (``check.js``; :func:`check_record` holds the
same rules in Python): every field of ``ticket.json`` is checked for its type and range, the
gunzipped model and weights must have the size and SHA-256 that ``ticket.json`` records (a file
damaged or replaced after the export is refused before it runs), an output holding NaN or infinite
values is refused as ``mirl restore`` refuses it, and so is a result of one colour from a photo of
many, or the photo returned unchanged (what zero weights give).

``ticket.json``'s ``model`` records the bytes as sent (the gzipped files the browser downloads:
``sent_bytes``) next to those of the same network stored dense (``dense.sent_bytes``: its whole
ONNX file gzipped, what the page sent before).

Example:
    >>> build_web_folder("site", onnx_data, info)   # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from mirl.errors import MirlError

from .compact import WEIGHTS_FILE

log = logging.getLogger(__name__)
ORT_WEB_VERSION = "1.30.0"
# The three files onnxruntime-web needs for the plain WebAssembly backend (no WebGPU/WebGL).
RUNTIME_FILES: tuple[str, ...] = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES: tuple[str, ...] = ("index.html", "app.js", "restore.js", "png.js", "weights.js", "check.js", "style.css")
MODEL_FILE = "model.onnx.gz"
TICKET_FILE = "ticket.json"
CARD_FILE = "model_card.md"
DEFAULT_TILE = 256
DEFAULT_OVERLAP = 32
# (file stem, label, corpus photo, degradation): one per task of the all-in-one network
EXAMPLES: tuple[tuple[str, str, str, str], ...] = (
    ("noisy", "noise (sigma 25)", "kodim23", "noise"),
    ("rainy", "rain streaks", "monarch", "rain"),
    ("hazy", "haze", "china", "haze"),
)
EXAMPLE_SIZE = (240, 320)  # height, width of the centre crop


def vendor_dir() -> Path:
    """Where setup puts onnxruntime-web's files: ``mirl/_vendor/onnxruntime-web``."""
    return Path(__file__).resolve().parents[1] / "_vendor" / "onnxruntime-web"


def runtime_missing() -> list[str]:
    """The onnxruntime-web files that are absent (empty when the runtime is vendored)."""
    base = vendor_dir()
    return [name for name in RUNTIME_FILES if not (base / name).is_file() or (base / name).stat().st_size == 0]


def template_dir() -> Path:
    """The page's source files (package data)."""
    return Path(__file__).resolve().parents[1] / "templates" / "web"


def _gzip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write(data)
    return buffer.getvalue()


def _write_examples(folder: Path, images: list[Any] | None = None) -> list[dict[str, str]]:
    """Degraded centre crops of three test photos of the built-in corpus (skipped when absent);
    each crop is also appended to ``images`` when given."""
    import numpy as np

    from mirl.data import degrade
    from mirl.data.corpus import PHOTOS, load_photo
    from mirl.data.imageio import write_image

    out = []
    h, w = EXAMPLE_SIZE
    for stem, label, photo_name, kind in EXAMPLES:
        photo = next((p for p in PHOTOS if p.name == photo_name), None)
        if photo is None or photo.path is None:
            continue
        img = load_photo(photo)
        if img.shape[0] < h or img.shape[1] < w:
            continue
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        crop = np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w])
        seed = degrade.derive_seed("web-example", photo_name, kind)
        if kind == "noise":
            bad, _ = degrade.add_gaussian_noise(crop, sigma=25, seed=seed)
        elif kind == "rain":
            bad, _ = degrade.add_rain(crop, seed=seed)
        else:
            bad, _ = degrade.add_haze(crop, seed=seed, airlight=0.9, beta=1.2)
        write_image(folder / "examples" / f"{stem}.png", bad, compress_level=9)
        if images is not None:
            images.append(bad)
        out.append({"file": f"examples/{stem}.png", "label": label, "photo": photo_name})
    return out


def manifest(examples: list[dict[str, str]], compact: bool = True) -> list[str]:
    """The files a web export writes (relative paths), given the examples it wrote and whether its
    weights are compact (``weights.bin.gz``)."""
    return sorted([*PAGE_FILES, *(f"ort/{name}" for name in RUNTIME_FILES[:2]), f"ort/{RUNTIME_FILES[2]}.gz",
                   MODEL_FILE, *([WEIGHTS_FILE] if compact else []), TICKET_FILE, CARD_FILE,
                   *(example["file"] for example in examples)])


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """What lies in an earlier web export that the export did not write (relative paths; folders
    end in ``/``). Its manifest is ``ticket.json``'s ``files``, or for an export made before that
    list, the layout. Raises :class:`MirlError` when ``folder`` holds no readable ``ticket.json``."""
    folder = Path(folder)
    try:
        record = json.loads((folder / TICKET_FILE).read_text(encoding="utf-8"))
        files = record["files"] if "files" in record else manifest(record.get("examples") or [], compact=False)
        written = {str(name) for name in files}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        raise MirlError(f"{folder}: exists and is not an earlier web export (no readable {TICKET_FILE}); "
                        "give a new or empty folder") from None
    kept = written | {parent.as_posix() for name in written for parent in Path(name).parents}
    foreign: list[str] = []
    for path in sorted(folder.rglob("*")):  # a folder comes before what it holds
        rel = path.relative_to(folder)
        if rel.as_posix() not in kept and not any(f"{q.as_posix()}/" in foreign for q in rel.parents):
            foreign.append(rel.as_posix() + ("/" if path.is_dir() and not path.is_symlink() else ""))
    return foreign


def check_target(out: str | os.PathLike) -> None:
    """Refuse a target that is a file, a non-empty folder other than an earlier web export, or an
    earlier export holding files it did not write (a re-export replaces the whole folder), and a
    missing runtime: all before the (slow) ONNX export starts."""
    missing = runtime_missing()
    if missing:
        raise MirlError(
            f"onnxruntime-web {ORT_WEB_VERSION} is not vendored ({', '.join(missing)} missing in {vendor_dir()}); "
            "run `make setup` (it fetches it from the npm registry with npm pack)"
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MirlError(f"{out}: exists and is not an earlier web export; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        foreign = foreign_files(out)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise MirlError(f"{out}: holds files that the earlier web export did not write ({shown}); a re-export "
                            "replaces the whole folder: move them out, or give another folder")


def build_web_folder(
    out: str | os.PathLike,
    onnx_data: bytes,
    info: Mapping[str, Any],
    card: str = "",
    examples: bool = True,
    compact: bool = True,
    values: str = "float16",
    check: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Write the static folder ``out`` (replaced whole, atomically: built beside it, then renamed).

    ``info`` is the page's ``ticket.json`` without the parts this function fills in (model sizes,
    runtime, examples, the manifest ``files``). Returns the final ``ticket.json`` record; a record
    of ``format`` ``mirl.web`` (as :func:`mirl.export.formats.web_info` writes it) that the page
    would refuse (:func:`record_problem`) is refused before anything is written. ``out``
    may be a new path, an empty folder or an earlier web export holding only what it wrote;
    anything else is refused rather than overwritten. ``compact`` ships the weights as bitmasks and
    ``values`` (float16, kept when the probe shows the output moves by at most half an 8-bit level;
    see :mod:`mirl.export.compact`); ``compact=False`` ships the whole ONNX file, weights dense.
    ``check(folder)`` runs on the finished folder before it replaces ``out``: an error there leaves
    ``out`` as it was.

    Example:
        >>> record = build_web_folder("site", onnx_data, web_info(ticket, "float32", "fast", 256, 32))  # doctest: +SKIP
        >>> record["model"]["sent_bytes"], record["model"]["dense"]["sent_bytes"]                        # doctest: +SKIP
        (124313, 322711)
    """
    check_target(out)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for name in PAGE_FILES:
            shutil.copyfile(template_dir() / name, tmp / name)
        (tmp / "ort").mkdir()
        for name in RUNTIME_FILES[:2]:
            shutil.copyfile(vendor_dir() / name, tmp / "ort" / name)
        wasm_gz = _gzip((vendor_dir() / RUNTIME_FILES[2]).read_bytes())
        (tmp / "ort" / f"{RUNTIME_FILES[2]}.gz").write_bytes(wasm_gz)
        images: list[Any] = []
        example_files = _write_examples(tmp, images) if examples else []
        dense_gz = _gzip(onnx_data)
        model: dict[str, Any] = {**dict(info.get("model", {})), "file": MODEL_FILE}
        if compact:
            from .compact import compact_model, probe_inputs

            packed = compact_model(onnx_data, values, probe_inputs(images))
            graph_gz, weights_gz = _gzip(packed.graph), _gzip(packed.blob)
            (tmp / MODEL_FILE).write_bytes(graph_gz)
            (tmp / WEIGHTS_FILE).write_bytes(weights_gz)
            model.update({"onnx_bytes": len(packed.graph), "gzip_bytes": len(graph_gz), "sha256": hashlib.sha256(packed.graph).hexdigest(),
                          "weights": {"file": WEIGHTS_FILE, "format": packed.header["format"], "version": packed.header["version"],
                                      "sha256": hashlib.sha256(packed.blob).hexdigest(), "bytes": len(packed.blob), "gzip_bytes": len(weights_gz), "values": packed.values,
                                      "external": packed.header["external"], "external_bytes": packed.header["external_bytes"],
                                      "probe_max_difference": packed.probe_max_difference, **packed.stats},
                          "sent_bytes": len(graph_gz) + len(weights_gz)})
            log.debug("web page weights: %d tensors (%d with a bitmask), %s values, %s bytes as sent against %s stored dense",
                     packed.stats["tensors"], packed.stats["masked"], packed.values, f"{model['sent_bytes']:,}", f"{len(dense_gz):,}")
        else:
            (tmp / MODEL_FILE).write_bytes(dense_gz)
            model.update({"onnx_bytes": len(onnx_data), "gzip_bytes": len(dense_gz), "sha256": hashlib.sha256(onnx_data).hexdigest(),
                          "weights": None, "sent_bytes": len(dense_gz)})
        model["dense"] = {"onnx_bytes": len(onnx_data), "sent_bytes": len(dense_gz)}
        record = dict(info)
        record["model"] = model
        record["runtime"] = {"name": "onnxruntime-web", "version": ORT_WEB_VERSION, "backend": "wasm",
                             "wasm": f"ort/{RUNTIME_FILES[2]}.gz", "wasm_bytes": (vendor_dir() / RUNTIME_FILES[2]).stat().st_size,
                             "wasm_gzip_bytes": len(wasm_gz)}
        record["examples"] = example_files
        record["files"] = manifest(record["examples"], compact)
        problem = record_problem(record) if record.get("format") == "mirl.web" else ""  # a page's record (web_info) is checked whole
        if problem:
            raise MirlError(f"{out}: {problem}; the page would refuse to load: export with --tile a multiple of 8 "
                            "and --overlap under half of it, from a ticket whose facts are numbers")
        (tmp / TICKET_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        os.chmod(tmp, 0o755)
        if check is not None:
            check(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _positive(v: Any) -> bool:
    return _count(v) and v > 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fraction(v: Any) -> bool:
    return _number(v) and 0 <= v <= 1


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _hash(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None


def _one_of(*values: Any) -> Callable[[Any], bool]:
    return lambda v: any(v == x and type(v) is type(x) for x in values)


def _or_none(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or test(v)


_COUNT, _POSITIVE, _TEXT = (_count, "a whole number of 0 or more"), (_positive, "a whole number above 0"), (_text, "a string")
# path: (test, what it must be); the same rules as the page's check.js
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "format": (_one_of("mirl.web"), '"mirl.web"'), "version": (_one_of(1), "1"), "title": _TEXT, "preset": _TEXT, "impl": _TEXT,
    "parameters": _POSITIVE, "restore_command": _TEXT, "density": (lambda v: isinstance(v, dict), "an object"),
    "density.prunable": (_fraction, "a number from 0 to 1"), "density.trainable": (_fraction, "a number from 0 to 1"),
    "density.nonzero_prunable": _COUNT, "density.prunable_total": _COUNT, "density.rule": _TEXT,
    "model": (lambda v: isinstance(v, dict), "an object"), "model.file": (_one_of(MODEL_FILE), f'"{MODEL_FILE}"'),
    "model.dtype": (_one_of("float32", "float16"), '"float32" or "float16"'),
    "model.sha256": (_hash, "64 lowercase hex digits (the SHA-256 of the gunzipped model)"),
    "model.onnx_bytes": _POSITIVE, "model.gzip_bytes": _POSITIVE, "model.sent_bytes": _POSITIVE,
    "model.dense": (lambda v: isinstance(v, dict), "an object"), "model.dense.sent_bytes": _POSITIVE, "model.dense.onnx_bytes": _POSITIVE,
    "model.weights": (_or_none(lambda v: isinstance(v, dict)), "an object or null"),
    "tiling": (lambda v: isinstance(v, dict), "an object"), "tiling.tile": (lambda v: _positive(v) and v % 8 == 0, "a multiple of 8 above 0"),
    "tiling.overlap": _COUNT, "metrics": (_or_none(lambda v: isinstance(v, dict)), "an object or null"),
    "provenance": (lambda v: isinstance(v, dict), "an object"), "provenance.checkpoint": _TEXT,
    "provenance.run": (_or_none(_text), "a string or null"), "provenance.level": (_or_none(_count), "a whole number or null"),
    "runtime": (lambda v: isinstance(v, dict), "an object"), "runtime.version": _TEXT,
    "runtime.wasm": (_one_of(f"ort/{RUNTIME_FILES[2]}.gz"), f'"ort/{RUNTIME_FILES[2]}.gz"'),
    "examples": (lambda v: isinstance(v, list), "a list"),
}
_WEIGHT_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model.weights.file": (_one_of(WEIGHTS_FILE), f'"{WEIGHTS_FILE}"'), "model.weights.format": (_one_of("mirl.web.weights"), '"mirl.web.weights"'),
    "model.weights.version": (_one_of(1), "1"), "model.weights.sha256": (_hash, "64 lowercase hex digits (the SHA-256 of the gunzipped weights)"),
    "model.weights.bytes": _POSITIVE, "model.weights.gzip_bytes": _POSITIVE,
    "model.weights.values": (_one_of("float16", "float32"), '"float16" or "float32"'), "model.weights.external": _TEXT,
    **{f"model.weights.{k}": _COUNT for k in ("external_bytes", "tensors", "kept", "positions")},
}
_METRIC_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "metrics.mean_psnr": (_number, "a number"), "metrics.mean_ssim": (_number, "a number"),
    # NaN when the level recorded no input PSNR: JSON that browsers do not parse (the page then refuses ticket.json)
    "metrics.mean_input_psnr": (lambda v: isinstance(v, float) or _number(v), "a number"),
    "metrics.convention": _TEXT, "metrics.convention_text": _TEXT,
}
_SPEED_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "speed": (lambda v: isinstance(v, dict), "an object or null"),
    **{f"speed.{k}": (lambda v: _number(v) and v > 0, "a number above 0") for k in ("ms", "dense_ms", "speedup", "macs", "dense_macs")},
    "speed.tile": _POSITIVE, "speed.threads": _POSITIVE, "speed.runtime": _TEXT, "speed.measured": _TEXT,
}
_MISSING = object()


def _at(record: Any, path: str) -> Any:
    for key in path.split("."):
        record = record.get(key, _MISSING) if isinstance(record, dict) else _MISSING
    return record


def record_problem(record: Any) -> str:
    """The first thing wrong with a ``ticket.json`` record, as one sentence, or ``""`` when the
    page can trust it: every field the page reads has its type and range (the page's ``check.js``
    holds the same rules).

    Example:
        >>> record_problem({"format": "mirl.web", "version": 2})
        'ticket.json: version is 2, it must be 1'
    """
    if not isinstance(record, dict):
        return "ticket.json is not a JSON object"
    rules = dict(_RULES)
    if isinstance(_at(record, "model.weights"), dict):
        rules.update(_WEIGHT_RULES)
    if isinstance(record.get("metrics"), dict):
        rules.update(_METRIC_RULES)
    if record.get("speed") is not None:
        rules.update(_SPEED_RULES)
    for path, (test, what) in rules.items():
        value = _at(record, path)
        ok = (value is _MISSING and path in ("metrics", "model.weights", "provenance.run", "provenance.level")) or (value is not _MISSING and test(value))
        if not ok:
            shown = "missing" if value is _MISSING else json.dumps(value)
            return f"ticket.json: {path} is {shown}, it must be {what}"
    tile, overlap = record["tiling"]["tile"], record["tiling"]["overlap"]
    if 2 * overlap >= tile:
        return f"ticket.json: tiling.overlap is {overlap}, it must be under half of tiling.tile ({tile})"
    if record["density"]["nonzero_prunable"] > record["density"]["prunable_total"]:
        return "ticket.json: density.nonzero_prunable is above density.prunable_total"
    weights = record["model"]["weights"]
    if weights and weights["kept"] > weights["positions"]:
        return "ticket.json: model.weights.kept is above model.weights.positions"
    sent = record["model"]["gzip_bytes"] + (weights["gzip_bytes"] if weights else 0)
    if record["model"]["sent_bytes"] != sent:
        return f"ticket.json: model.sent_bytes is {record['model']['sent_bytes']}, the files it names add up to {sent}"
    for i, example in enumerate(record["examples"]):
        if not (isinstance(example, dict) and _text(example.get("label")) and _text(example.get("file"))
                and re.fullmatch(r"examples/[A-Za-z0-9_-]+\.png", example["file"])):
            return f'ticket.json: examples[{i}] must be {{"file": "examples/<name>.png", "label": "..."}}'
    return ""


def read_record(folder: str | os.PathLike) -> dict[str, Any]:
    """``folder``'s ``ticket.json``, checked as the page checks it. Raises :class:`MirlError`
    naming the file and the field when it cannot be trusted."""
    path = Path(folder) / TICKET_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MirlError(f"{path}: not a readable web export's ticket.json ({type(exc).__name__}); "
                        "re-export the page with mirl export --format web") from None
    problem = record_problem(record)
    if problem:
        raise MirlError(f"{path}: {problem.removeprefix('ticket.json: ')}; re-export the page with mirl export --format web")
    return record


def check_file(data: bytes, path: str | os.PathLike, size: int, digest: str) -> None:
    """Refuse ``data`` (the gunzipped ``path``) when its size or SHA-256 is not what ``ticket.json``
    records, as the page refuses it."""
    if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
        raise MirlError(f"{path}: does not match the size and SHA-256 that ticket.json records: it is damaged or was "
                        "replaced after the export; re-export the page with mirl export --format web")


def folder_size(folder: str | os.PathLike) -> int:
    """Total bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


__all__ = ["check_file", "check_target", "read_record", "record_problem", "DEFAULT_OVERLAP", "DEFAULT_TILE", "ORT_WEB_VERSION", "RUNTIME_FILES", "build_web_folder", "folder_size",
           "foreign_files", "manifest", "runtime_missing", "template_dir", "vendor_dir"]
