"""Compact weights for the web page: per tensor a bitmask of the kept positions and the kept values.

onnxruntime (native and web) turns sparse initialisers dense when it loads them, so a ticket stored
in its ONNX file is as large as the dense network before gzip. The web export therefore ships

* ``model.onnx.gz``: the ONNX graph whose large float initialisers point at external data
  (``data_location = EXTERNAL``, location :data:`EXTERNAL_NAME`, an offset and a length each);
  scalars and other tensors under :data:`MIN_ELEMENTS` values stay inside the graph;
* ``weights.bin.gz``: the weights blob below, gzipped.

The page (``mirl/templates/web/weights.js``) rebuilds the external-data buffer from the blob and
hands it to onnxruntime-web with the session option ``externalData``; :func:`inflate` is the same
algorithm in numpy, and :func:`page_onnx` rebuilds a self-contained ONNX file from a web folder.

The blob (all numbers little-endian)::

    "MIRLWT01"                  8 bytes, the format and its version
    uint32 H                    the header's length in bytes
    header                      H bytes of UTF-8 JSON: see below
    masks                       one packed bitmask per masked tensor, in tensor order: ceil(count / 8)
                                bytes, bit j of byte i (least significant first) = position 8i+j kept
    float16 values              the kept values stored as float16, all tensors in order, split into
                                byte planes (every low byte, then every high byte): gzip packs the
                                planes better than interleaved bytes (about 8% here)
    float32 values              the same for values kept as float32, four planes

The header's ``tensors`` are rows ``[offset, count, type, values, masked]`` in the order the
external initialisers appear in the graph: ``offset`` into the external buffer (16-byte aligned),
``count`` elements, ``type`` the initialiser's element type (``float32`` or ``float16``),
``values`` the dtype its kept values are stored in, ``masked`` 1 when a bitmask says which positions
are kept (the others are zeros) and 0 when every position has a value (a tensor whose bitmask
would cost more than the zeros it saves: prompts, norms, biases).

Why float16 values: a float32 weight rounded to float16 moves by at most 2^-11 of itself (0.05%),
and the restored image moves much less: on the quickstart study's last level the largest change of
the raw output over 18 degraded 256 px photos was 7.6e-5 (0.02 of an 8-bit level; the dense level
0: 9.3e-4, 0.24 of a level). The export checks every page: it runs the inflated and the original
network in onnxruntime on :func:`probe_inputs` and keeps float32 values (exact) when the largest
difference exceeds :data:`PROBE_TOLERANCE` (half an 8-bit level), so the page stays within one
8-bit level of ``mirl restore``. A tensor whose kept values float16 cannot hold (above 65504, or so
small that they would round to zero, e.g. an epsilon of 1e-12) keeps float32 values on its own.

Example:
    >>> packed = compact_model(onnx_data)                         # doctest: +SKIP
    >>> header, external = inflate(packed.blob)                   # doctest: +SKIP
    >>> session = inference_session(assemble(packed.graph, external))  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mirl.errors import MirlError

log = logging.getLogger(__name__)

MAGIC = b"MIRLWT01"
FORMAT = "mirl.web.weights"
VERSION = 1
WEIGHTS_FILE = "weights.bin.gz"
EXTERNAL_NAME = "model.weights"  # the external-data location the graph's initialisers name
MIN_ELEMENTS = 16  # smaller float initialisers (scalars, eps) stay inside the graph, as float32
ALIGN = 16
VALUE_DTYPES: tuple[str, ...] = ("float16", "float32")
PROBE_TOLERANCE = 0.5 / 255  # largest change of the raw output that float16 values may cause
PROBE_SIZE = 64
_FP16_MAX = 65504.0
_FP16_SMALLEST = 2.0 ** -24  # the smallest positive float16 (subnormal); half of it rounds to zero


@dataclass
class CompactModel:
    """A graph with external weights, the blob that holds them, and what the export measured.

    ``probe_max_difference`` is the largest change of the raw output that the stored values cause
    on the probe inputs (0.0 when every value is stored exactly; ``None`` when not measured).
    """

    graph: bytes
    blob: bytes
    header: dict[str, Any]
    values: str
    probe_max_difference: float | None = None
    stats: dict[str, int] = field(default_factory=dict)


def _require() -> None:
    from .onnx_model import require_onnx

    require_onnx("onnx")


def _load(onnx_data: bytes, what: str = "the ONNX model") -> Any:
    import onnx

    try:
        return onnx.load_from_string(onnx_data)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise MirlError(f"{what} is not a readable ONNX file ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}); "
                        "export it again with mirl export --format onnx") from None


def _fits_float16(kept: np.ndarray) -> bool:
    """Whether float16 holds every kept value: none above its range, none rounding to zero."""
    if kept.size == 0:
        return True
    magnitude = np.abs(kept.astype(np.float64))
    return bool(np.all(np.isfinite(magnitude)) and magnitude.max() <= _FP16_MAX and magnitude.min() >= _FP16_SMALLEST)


def _planes(values: np.ndarray) -> bytes:
    """Little-endian bytes of ``values`` split into byte planes (all first bytes, all second, ...)."""
    raw = np.ascontiguousarray(values.astype(values.dtype.newbyteorder("<"))).view(np.uint8)
    return raw.reshape(-1, values.dtype.itemsize).T.tobytes()


def _unplanes(data: bytes, count: int, dtype: np.dtype) -> np.ndarray:
    size = np.dtype(dtype).itemsize
    planes = np.frombuffer(data, np.uint8, count * size).reshape(size, count)
    return np.ascontiguousarray(planes.T).view(np.dtype(dtype).newbyteorder("<")).reshape(count)


def _pack(model: Any, values: str) -> tuple[bytes, bytes, dict[str, Any], dict[str, int], bool]:
    """Move ``model``'s large float initialisers to external data (modifies ``model``); return
    ``(graph, blob, header, stats, rounded)``, ``rounded`` True when some float32 value is stored
    as float16."""
    import onnx
    from onnx import numpy_helper

    types = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}
    rows: list[list[Any]] = []
    masks: list[bytes] = []
    halves: list[np.ndarray] = []
    singles: list[np.ndarray] = []
    offset = 0
    stats = {"tensors": 0, "masked": 0, "positions": 0, "kept": 0, "float32_tensors": 0}
    rounded = False
    for init in model.graph.initializer:
        if init.data_type not in types or int(np.prod(init.dims, dtype=np.int64)) < MIN_ELEMENTS:
            continue
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise MirlError(f"initialiser {init.name!r} already uses external data; give an ONNX file with its weights inside "
                            "(as mirl export --format onnx writes it)")
        kind = types[init.data_type]
        flat = numpy_helper.to_array(init).reshape(-1)
        keep = flat != 0
        kept = flat[keep]
        count, n_kept = int(flat.size), int(kept.size)
        itemsize = 2 if kind == "float16" or values == "float16" else 4
        masked = n_kept * itemsize + math.ceil(count / 8) < count * itemsize
        stored = flat[keep] if masked else flat
        if kind == "float16":
            value_kind = "float16"
            halves.append(stored.astype(np.float16))
        elif values == "float16" and _fits_float16(kept):
            value_kind = "float16"
            halves.append(stored.astype(np.float16))
            rounded = True
        else:
            value_kind = "float32"
            singles.append(stored.astype(np.float32))
            stats["float32_tensors"] += 1
        if masked:
            masks.append(np.packbits(keep, bitorder="little").tobytes())
            stats["masked"] += 1
        offset = -(-offset // ALIGN) * ALIGN
        length = count * (2 if kind == "float16" else 4)
        rows.append([offset, count, kind, value_kind, int(masked)])
        stats["tensors"] += 1
        stats["positions"] += count
        stats["kept"] += n_kept
        init.ClearField("raw_data")
        for name in ("float_data", "int32_data"):
            init.ClearField(name)
        init.data_location = onnx.TensorProto.EXTERNAL
        del init.external_data[:]
        for key, value in (("location", EXTERNAL_NAME), ("offset", str(offset)), ("length", str(length))):
            entry = init.external_data.add()
            entry.key, entry.value = key, value
        offset += length
    mask_bytes = b"".join(masks)
    half = np.concatenate(halves) if halves else np.zeros(0, np.float16)
    single = np.concatenate(singles) if singles else np.zeros(0, np.float32)
    header: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "external": EXTERNAL_NAME, "external_bytes": offset,
        "counts": {"mask_bytes": len(mask_bytes), "float16": int(half.size), "float32": int(single.size)},
        "columns": ["offset", "count", "type", "values", "masked"], "tensors": rows,
    }
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob = b"".join([MAGIC, struct.pack("<I", len(text)), text, mask_bytes, _planes(half), _planes(single)])
    return model.SerializeToString(), blob, header, stats, rounded


def read_header(blob: bytes) -> tuple[dict[str, Any], int]:
    """The blob's header and where its masks start. Raises :class:`MirlError` for another file."""
    if len(blob) < 12 or blob[:8] != MAGIC:
        raise MirlError(f"not a mirl weights blob (it should start with {MAGIC.decode()}); re-export the page with "
                        "mirl export --format web")
    (length,) = struct.unpack("<I", blob[8:12])
    try:
        header = json.loads(blob[12 : 12 + length].decode("utf-8"))
    except ValueError:
        raise MirlError("the weights blob's header is damaged; re-export the page with mirl export --format web") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise MirlError(f"weights blob {header.get('format')!r} version {header.get('version')!r}: this mirl reads "
                        f"{FORMAT} version {VERSION}")
    return header, 12 + length


def inflate(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """Rebuild the external-data buffer from a weights blob, as the page's ``weights.js`` does:
    pruned positions are exact zeros, kept values are converted to the initialiser's type.
    Returns ``(header, buffer)``.

    Example:
        >>> header, external = inflate(gzip.decompress(open("site/weights.bin.gz", "rb").read()))  # doctest: +SKIP
    """
    header, start = read_header(blob)
    counts = header["counts"]
    mask_end = start + counts["mask_bytes"]
    half_end = mask_end + 2 * counts["float16"]
    single_end = half_end + 4 * counts["float32"]
    if len(blob) != single_end:
        raise MirlError(f"the weights blob has {len(blob):,} bytes, its header describes {single_end:,}; it is damaged: "
                        "re-export the page")
    masks = np.frombuffer(blob, np.uint8, counts["mask_bytes"], start)
    half = _unplanes(blob[mask_end:half_end], counts["float16"], np.float16)
    single = _unplanes(blob[half_end:single_end], counts["float32"], np.float32)
    out = bytearray(header["external_bytes"])
    at_mask = at_half = at_single = 0
    for offset, count, kind, value_kind, masked in header["tensors"]:
        target = np.zeros(count, np.float16 if kind == "float16" else np.float32)
        if masked:
            size = math.ceil(count / 8)
            keep = np.unpackbits(masks[at_mask : at_mask + size], bitorder="little")[:count].astype(bool)
            at_mask += size
            n = int(keep.sum())
        else:
            keep, n = slice(None), count
        if value_kind == "float16":
            target[keep] = half[at_half : at_half + n]
            at_half += n
        else:
            target[keep] = single[at_single : at_single + n]
            at_single += n
        data = target.astype(target.dtype.newbyteorder("<")).tobytes()
        out[offset : offset + len(data)] = data
    if (at_mask, at_half, at_single) != (counts["mask_bytes"], counts["float16"], counts["float32"]):
        raise MirlError("the weights blob's sections do not match its tensors; it is damaged: re-export the page")
    return header, bytes(out)


def assemble(graph: bytes, external: bytes) -> bytes:
    """A self-contained ONNX file: ``graph`` with its external initialisers filled from ``external``."""
    _require()
    import onnx

    model = _load(graph, "the page's graph")
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        ref = {entry.key: entry.value for entry in init.external_data}
        if ref.get("location") != EXTERNAL_NAME:
            raise MirlError(f"initialiser {init.name!r} points at {ref.get('location')!r}, not {EXTERNAL_NAME!r}")
        offset, length = int(ref.get("offset", 0)), int(ref["length"])
        if offset + length > len(external):
            raise MirlError(f"initialiser {init.name!r} lies beyond the external data ({offset + length:,} > {len(external):,} bytes)")
        init.raw_data = external[offset : offset + length]
        del init.external_data[:]
        init.data_location = onnx.TensorProto.DEFAULT
    return model.SerializeToString()


def probe_inputs(images: Sequence[np.ndarray] = (), size: int = PROBE_SIZE) -> list[np.ndarray]:
    """``[1, 3, size, size]`` float32 inputs: the centre crops of ``images`` (HxWx3, uint8 or
    float in [0, 1]) and one seeded synthetic photo (smooth colours, edges and noise)."""
    inputs = []
    for image in images:
        img = np.asarray(image)
        img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
        if img.ndim != 3 or img.shape[0] < size or img.shape[1] < size:
            continue
        y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        inputs.append(np.ascontiguousarray(img[y0 : y0 + size, x0 : x0 + size, :3].transpose(2, 0, 1)[None]))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    smooth = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (xx + c / 3) + 3 * yy * c) for c in range(3)])
    edges = (xx > 0.6).astype(np.float32) * 0.3
    synthetic = np.clip(smooth - edges + rng.normal(0, 0.1, smooth.shape), 0, 1).astype(np.float32)
    return inputs + [synthetic[None]]


def _max_difference(original: bytes, inflated: bytes, inputs: Sequence[np.ndarray]) -> float:
    from .onnx_model import INPUT_NAME, inference_session

    first = inference_session(original, threads=1)
    second = inference_session(inflated, threads=1)
    worst = 0.0
    for x in inputs:
        a = first.run(None, {INPUT_NAME: x})[0]
        b = second.run(None, {INPUT_NAME: x})[0]
        worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()) if np.isfinite(b).all() else float("inf"))
    return worst


def compact_model(onnx_data: bytes, values: str = "float16", probe: Sequence[np.ndarray] | None = None,
                  tolerance: float = PROBE_TOLERANCE) -> CompactModel:
    """Split ``onnx_data`` into a graph with external weights and a compact weights blob.

    ``values="float16"`` stores kept float32 values as float16 when the probe (``probe``: inputs
    ``[1, 3, H, W]``; default :func:`probe_inputs`) shows the output moves by at most
    ``tolerance``; otherwise, and with ``values="float32"``, they stay float32 (exact).

    Example:
        >>> packed = compact_model(open("ticket.onnx", "rb").read())   # doctest: +SKIP
        >>> packed.values, len(gzip.compress(packed.blob)) < 1e6        # doctest: +SKIP
        ('float16', True)
    """
    if values not in VALUE_DTYPES:
        raise MirlError(f"compact weights store values as {' or '.join(VALUE_DTYPES)}, not {values!r}")
    _require()
    graph, blob, header, stats, rounded = _pack(_load(onnx_data), values)
    difference: float | None = 0.0
    if rounded:
        from .onnx_model import require_onnx

        require_onnx("onnxruntime")
        inputs = list(probe) if probe is not None else probe_inputs()
        inflated = assemble(graph, inflate(blob)[1])
        try:
            difference = _max_difference(onnx_data, inflated, inputs) if inputs else None
        except Exception as exc:  # onnxruntime raises its own types
            raise MirlError(f"the ONNX model does not run in onnxruntime ({str(exc).splitlines()[0][:160]}); "
                            "export it again with mirl export --format onnx") from None
        if difference is None or difference > tolerance:
            log.warning("float16 weights change the output by %s (more than %.2g, half an 8-bit level) on the probe; "
                        "the page keeps float32 values", "an unknown amount" if difference is None else f"{difference:.3g}", tolerance)
            graph, blob, header, stats, rounded = _pack(_load(onnx_data), "float32")
            difference = 0.0
    stored = "float16" if any(row[3] == "float16" for row in header["tensors"]) else "float32"
    return CompactModel(graph, blob, header, stored, difference, stats)


def page_onnx(folder: str | os.PathLike) -> bytes:
    """A self-contained ONNX file (bytes) of the network a web export's page runs: its graph
    (``model.onnx.gz``) with the weights that ``weights.bin.gz`` inflates to; for a page without
    compact weights, the gunzipped ``model.onnx.gz``. Refuses, as the page does, a ``ticket.json``
    with a field of the wrong type or range and a file whose size or SHA-256 is not the recorded one.

    Example:
        >>> open("ticket.onnx", "wb").write(page_onnx("site"))   # doctest: +SKIP
    """
    from .web import check_file, read_record

    folder = Path(folder)
    record = read_record(folder)  # every field checked, as the page checks it
    model = record["model"]
    try:
        graph = gzip.decompress((folder / model["file"]).read_bytes())
        weights = model["weights"]
        blob = gzip.decompress((folder / weights["file"]).read_bytes()) if weights else b""
    except (OSError, ValueError, EOFError, gzip.BadGzipFile) as exc:
        raise MirlError(f"{folder}: not a readable mirl web export ({type(exc).__name__}: {exc}); "
                        "export it again with mirl export --format web") from None
    check_file(graph, folder / model["file"], model["onnx_bytes"], model["sha256"])
    if not weights:
        return graph
    check_file(blob, folder / weights["file"], weights["bytes"], weights["sha256"])
    return assemble(graph, inflate(blob)[1])


__all__ = ["CompactModel", "EXTERNAL_NAME", "MIN_ELEMENTS", "PROBE_TOLERANCE", "VALUE_DTYPES", "WEIGHTS_FILE", "assemble",
           "compact_model", "inflate", "page_onnx", "probe_inputs", "read_header"]
