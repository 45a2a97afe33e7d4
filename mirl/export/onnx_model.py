"""ONNX export of a ticket with torch's dynamo exporter: dynamic height and width (multiples of 8).

The graph has one input ``image`` (float32 ``[1, 3, height, width]``, RGB in [0, 1], height
and width multiples of 8) and one output ``restored`` of the same shape, the network's raw output
(not clamped: :func:`mirl.scoring.restore.restore_image` blends tiles first, then clamps). Opset 18.

``dtype="float16"`` stores the weights as float16 and casts them back to float32 in the graph,
so the file is half the size and every runtime computes in float32 (onnxruntime folds the casts
once when it loads the model). The legacy TorchScript exporter cannot trace the ``fast``
implementation (``F.layer_norm`` on a shape read from the tensor); the dynamo exporter handles
both implementations.

Needs the ``onnx`` extra: ``pip install -e '.[onnx]'`` (onnx, onnxscript, onnxruntime).

Example:
    >>> from mirl.models import build_model
    >>> data = onnx_bytes(build_model("tiny"))                  # doctest: +SKIP
    >>> session = inference_session(data)                       # doctest: +SKIP
    >>> session.run(None, {"image": x.numpy()})[0].shape        # doctest: +SKIP
    (1, 3, 64, 64)
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from typing import Any, Iterator, Mapping

import torch

from mirl.errors import MirlError
from mirl.fileio import atomic_open
from mirl.models.promptir import channel_norm_as_reductions

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "restored"
DTYPES: tuple[str, ...] = ("float32", "float16")
MULTIPLE = 8
# Float initializers smaller than this stay float32 under dtype="float16" (scalars, eps).
_MIN_FP16_ELEMENTS = 16
INSTALL_HINT = "install the onnx extra: pip install -e '.[onnx]' (onnx, onnxscript, onnxruntime)"


def require_onnx(*modules: str) -> None:
    """Raise :class:`MirlError` with the install command when an ONNX package is missing."""
    import importlib.util

    missing = [m for m in (modules or ("onnx", "onnxscript", "onnxruntime")) if importlib.util.find_spec(m) is None]
    if missing:
        raise MirlError(f"the ONNX export needs {', '.join(missing)}; {INSTALL_HINT}")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines and warnings (torchvision absent, ...)."""
    loggers = [logging.getLogger(n) for n in ("torch", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def to_float16_weights(model: Any) -> Any:
    """Store every float32 initializer of ``model`` (an ``onnx.ModelProto``) as float16, cast back
    to float32 by a ``Cast`` node, so the graph still computes in float32. Modifies and returns it."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < _MIN_FP16_ELEMENTS:
            kept.append(init)
            continue
        values = numpy_helper.to_array(init).astype(np.float16)
        half = numpy_helper.from_array(values, name=f"{init.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT, name=f"{init.name}__to_fp32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def onnx_bytes(
    model: torch.nn.Module,
    dtype: str = "float32",
    metadata: Mapping[str, str] | None = None,
    example_size: int = 64,
    browser: bool = False,
) -> bytes:
    """Export ``model`` (a PromptIR, any implementation) to ONNX and return the file's bytes.

    ``metadata`` lands in the model's ``metadata_props`` (onnxruntime:
    ``session.get_modelmeta().custom_metadata_map``). ``browser`` writes the graph for
    onnxruntime-web (:func:`mirl.models.promptir.channel_norm_as_reductions`); the default suits
    native onnxruntime.
    """
    require_onnx()
    if dtype not in DTYPES:
        raise MirlError(f"ONNX weights can be stored as {' or '.join(DTYPES)}, not {dtype!r}")
    import copy

    net = copy.deepcopy(model).to("cpu", torch.float32).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    example = torch.rand(1, 3, example_size, example_size)
    h8 = torch.export.Dim("height_8", min=1, max=4096)
    w8 = torch.export.Dim("width_8", min=1, max=4096)
    shapes = {"inp_img": {2: MULTIPLE * h8, 3: MULTIPLE * w8}}
    try:
        with _quiet_exporter(), (channel_norm_as_reductions() if browser else contextlib.nullcontext()):
            program = torch.onnx.export(net, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=shapes, opset_version=OPSET, optimize=True, verbose=False)
    except Exception as exc:  # the exporter raises many types; all mean the same to the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MirlError(f"ONNX export failed: {first[:300]}") from exc
    proto = program.model_proto
    _strip_node_metadata(proto)
    _rename_dims(proto)
    if dtype == "float16":
        to_float16_weights(proto)
    import onnx

    del proto.metadata_props[:]
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=str(key), value=str(value))
    proto.doc_string = "PromptIR exported by mirl: input 'image' [1, 3, H, W] in [0, 1], H and W multiples of 8"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _strip_node_metadata(proto: Any) -> None:
    """Drop what the exporter records per node (Python stack traces with local paths, module
    names): a third of a small model's file, and nothing a runtime reads."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in proto.graph.value_info:
        del value.metadata_props[:]
        value.doc_string = ""


def _rename_dims(proto: Any) -> None:
    """Name the symbolic dimensions of the graph's input and output ``height`` and ``width``."""
    names = {2: "height", 3: "width"}
    for value in list(proto.graph.input) + list(proto.graph.output):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param and axis in names:
                dim.dim_param = names[axis]


def export_onnx(path: str | os.PathLike, model: torch.nn.Module, dtype: str = "float32",
                metadata: Mapping[str, str] | None = None) -> int:
    """Write the ONNX file atomically; return its size in bytes.

    Example:
        >>> export_onnx("ticket.onnx", ticket.model, dtype="float16")   # doctest: +SKIP
    """
    data = onnx_bytes(model, dtype, metadata)
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return len(data)


def reuse_onnx(path: str | os.PathLike, model: torch.nn.Module, size: int = 32) -> tuple[bytes, dict[str, str]]:
    """Read an ONNX file exported earlier and check, with one forward pass on a ``size`` x ``size``
    input, that it computes ``model``'s function. Returns ``(bytes, metadata_props)``."""
    require_onnx("onnx", "onnxruntime")
    import numpy as np
    import onnx

    path = os.fspath(path)
    try:
        data = open(path, "rb").read()
        proto = onnx.load_from_string(data)
        session = inference_session(data, threads=1)
    except OSError as exc:
        raise MirlError(f"{path}: cannot read the ONNX file ({exc.strerror})") from None
    except Exception as exc:  # onnx and onnxruntime raise their own types for damaged files
        raise MirlError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:160]})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    try:
        got = session.run(None, {INPUT_NAME: x.numpy()})[0]
    except Exception as exc:
        raise MirlError(f"{path}: does not run as a PromptIR ONNX export ({str(exc).splitlines()[0][:160]})") from None
    tolerance = 2e-2 if meta.get("mirl.dtype") == "float16" else 1e-3
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if diff > tolerance:
        raise MirlError(f"{path}: does not compute this ticket's function (max difference {diff:.3g} on a test input); "
                        "export it from the same checkpoint and mask, or leave out --onnx")
    return data, meta


def inference_session(model: str | os.PathLike | bytes, threads: int = 0) -> Any:
    """An onnxruntime CPU session for a file or bytes (``threads=0``: onnxruntime's default)."""
    require_onnx("onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


__all__ = ["DTYPES", "INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "inference_session", "onnx_bytes",
           "require_onnx", "reuse_onnx", "to_float16_weights"]
