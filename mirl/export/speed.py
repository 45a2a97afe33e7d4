"""What a network costs where it runs: multiply-accumulates per tile (torch's ``FlopCounterMode``)
and native onnxruntime milliseconds per tile, two graphs timed interleaved in one process so that
both see the same machine load.

A narrowed ``refill`` ticket is compared with the dense network, i.e. the same ticket with its
zeros kept: onnxruntime densifies pruned weights and multiplies them like any other, so an
unstructured ticket's graph runs as the dense one.

Example:
    >>> from mirl.models import build_model
    >>> multiply_accumulates(build_model("tiny"), 64)
    114622896
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Mapping

import numpy as np
import torch

TILE = 256


def multiply_accumulates(model: torch.nn.Module, tile: int = TILE) -> int:
    """Multiply-accumulates of one forward pass on a ``1x3xTxT`` tile: convolutions and matrix
    products as torch counts them (half its FLOPs); what runs, zeros included.

    Example:
        >>> from mirl.models import build_model
        >>> multiply_accumulates(build_model("tiny"), 64) > 0
        True
    """
    from torch.utils.flop_counter import FlopCounterMode

    parameter = next(model.parameters())
    x = torch.zeros(1, 3, tile, tile, dtype=parameter.dtype, device=parameter.device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops()) // 2


def tile_times(graphs: Mapping[str, bytes], threads: int = 1, repeats: int = 5, tile: int = TILE) -> dict[str, list[float]]:
    """Milliseconds per ``tile`` x ``tile`` restoration of each ONNX graph in native onnxruntime on
    ``threads`` threads, after one warm-up run each; the graphs take turns run by run.

    Example:
        >>> times = tile_times({"dense": dense_onnx, "refill": narrow_onnx}, repeats=3)  # doctest: +SKIP
        >>> statistics.median(times["dense"]) / statistics.median(times["refill"])        # doctest: +SKIP
        3.2
    """
    from .onnx_model import INPUT_NAME, inference_session

    sessions = {name: inference_session(data, threads=threads) for name, data in graphs.items()}
    x = np.random.default_rng(0).random((1, 3, tile, tile), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        session.run(None, {INPUT_NAME: x})
    for _ in range(repeats):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {INPUT_NAME: x})
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def speed_against_dense(graph: bytes, dense_graph: bytes, model: torch.nn.Module, dense_model: torch.nn.Module,
                        threads: int = 1, repeats: int = 5) -> dict[str, Any]:
    """The record a page and a model card show: ms per 256x256 tile of ``graph`` and of the dense
    network's graph (medians, interleaved runs), the speed-up, and each one's multiply-accumulates.

    Example:
        >>> speed_against_dense(narrow_onnx, dense_onnx, narrowed, masked)["speedup"]   # doctest: +SKIP
        3.2
    """
    import onnxruntime

    times = tile_times({"ticket": graph, "dense": dense_graph}, threads=threads, repeats=repeats)
    ms, dense_ms = statistics.median(times["ticket"]), statistics.median(times["dense"])
    return {"tile": TILE, "threads": threads, "repeats": repeats, "ms": round(ms, 1), "dense_ms": round(dense_ms, 1),
            "speedup": round(dense_ms / ms, 2), "macs": multiply_accumulates(model), "dense_macs": multiply_accumulates(dense_model),
            "runtime": f"native onnxruntime {onnxruntime.__version__}, CPU", "measured": time.strftime("%Y-%m-%d")}


def speed_text(speed: Mapping[str, Any]) -> str:
    """One line for a model card or a report.

    Example:
        >>> speed_text({"tile": 256, "threads": 1, "ms": 55.0, "dense_ms": 175.0, "speedup": 3.18, "macs": 2_000_000_000,
        ...             "dense_macs": 7_300_000_000, "runtime": "native onnxruntime 1.23.2, CPU", "measured": "2026-12-06"})
        '55 ms per 256x256 tile against 175 ms for the dense network (3.2x faster; 2.0 against 7.3 G multiply-accumulates; native onnxruntime 1.23.2, CPU, 1 thread, at export on 2026-12-06)'
    """
    threads = f"{speed['threads']} thread{'s' if speed['threads'] != 1 else ''}"
    return (f"{speed['ms']:.0f} ms per {speed['tile']}x{speed['tile']} tile against {speed['dense_ms']:.0f} ms for the dense "
            f"network ({speed['speedup']:.1f}x faster; {speed['macs'] / 1e9:.1f} against {speed['dense_macs'] / 1e9:.1f} G "
            f"multiply-accumulates; {speed['runtime']}, {threads}, at export on {speed['measured']})")


__all__ = ["TILE", "multiply_accumulates", "speed_against_dense", "speed_text", "tile_times"]
