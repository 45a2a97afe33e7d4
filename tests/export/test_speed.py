"""mirl.export.speed: multiply-accumulates against hand counts, onnxruntime tile timings on
hand-made graphs (no exporter), and the one-line wording of a speed record."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn

from mirl.export.speed import TILE, multiply_accumulates, speed_against_dense, speed_text, tile_times
from mirl.models import build_model


def _conv_macs(conv: nn.Conv2d, h: int, w: int) -> int:
    """Hand count: every output value is a sum over (in_channels / groups) x kernel taps."""
    kh, kw = conv.kernel_size
    return conv.out_channels * h * w * (conv.in_channels // conv.groups) * kh * kw


@pytest.mark.parametrize("conv", [nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(3, 6, 3, padding=1, groups=3),
                                  nn.Conv2d(3, 4, 1, bias=False)], ids=["3x3", "grouped", "1x1"])
def test_a_single_convolution_matches_the_hand_count(conv: nn.Conv2d) -> None:
    assert multiply_accumulates(conv, 8) == _conv_macs(conv, 8, 8)
    assert multiply_accumulates(conv, 16) == 4 * _conv_macs(conv, 8, 8)


def test_a_stride_and_a_matrix_product_count_too() -> None:
    """A strided convolution counts its smaller output; a linear layer in_features x out_features per row."""
    down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    net = nn.Sequential(down, nn.Flatten(2), nn.Linear(64, 10))  # 16x16 tile -> 8 channels of 8x8 = 64 features
    assert multiply_accumulates(net, 16) == _conv_macs(down, 8, 8) + 8 * 64 * 10


def test_removing_hidden_channels_saves_exactly_their_operations() -> None:
    """Narrowing k of the first FFN's hidden channels (full resolution) saves k x (2 dim + 2 x 9 + dim)
    per pixel: project_in makes 2 rows of dim inputs each, the depth-wise conv filters both, project_out
    reads one column of dim outputs."""
    from mirl.models.narrow import narrow_model

    torch.manual_seed(0)
    net = build_model("tiny").eval()
    ffn = net.encoder_level1[0].ffn
    dim, hidden, k, tile = ffn.project_in.in_channels, ffn.project_out.in_channels, 5, 32
    with torch.no_grad():
        ffn.project_out.weight[:, :k] = 0
    small = narrow_model(net)
    assert small.narrow_widths["encoder_level1.0.ffn.hidden"] == hidden - k
    saved = k * tile * tile * (2 * dim + 2 * 9 + dim)
    assert multiply_accumulates(net, tile) - multiply_accumulates(small, tile) == saved


def test_zeros_still_count() -> None:
    """What runs is counted: a masked (all-zero) convolution costs as much as a dense one."""
    conv = nn.Conv2d(3, 5, 3, padding=1)
    dense = multiply_accumulates(conv, 8)
    with torch.no_grad():
        conv.weight.zero_()
    assert multiply_accumulates(conv, 8) == dense


def _identity() -> bytes:
    from onnx import TensorProto, helper

    dims: list[Any] = [1, 3, "height", "width"]
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["restored"])], "identity",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("restored", TensorProto.FLOAT, dims)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10).SerializeToString()


def test_tile_times_times_every_graph_each_repeat() -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
    times = tile_times({"a": _identity(), "b": _identity()}, repeats=3, tile=32)
    assert list(times) == ["a", "b"]
    assert all(len(v) == 3 and all(t > 0 for t in v) for v in times.values())


def test_speed_against_dense_records_medians_ratio_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Medians of the interleaved runs, their ratio, and each network's multiply-accumulates per 256 px tile."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
    import onnxruntime

    from mirl.export import speed

    calls: list[tuple[list[str], int, int]] = []

    def fake_times(graphs: dict[str, bytes], threads: int = 1, repeats: int = 5, tile: int = TILE) -> dict[str, list[float]]:
        calls.append((list(graphs), threads, repeats))
        return {"ticket": [10.0, 30.0, 20.04], "dense": [50.0, 70.0, 60.13]}

    monkeypatch.setattr(speed, "tile_times", fake_times)
    small, dense = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 8, 3, padding=1)
    record = speed_against_dense(b"graph", b"dense graph", small, dense, threads=2, repeats=3)
    assert calls == [(["ticket", "dense"], 2, 3)]
    assert record["ms"] == 20.0 and record["dense_ms"] == 60.1 and record["speedup"] == 3.0
    assert record["tile"] == TILE and record["threads"] == 2 and record["repeats"] == 3
    assert record["macs"] == _conv_macs(small, TILE, TILE) and record["dense_macs"] == _conv_macs(dense, TILE, TILE)
    assert onnxruntime.__version__ in record["runtime"] and re.fullmatch(r"\d{4}-\d\d-\d\d", record["measured"])
    assert speed_text(record).startswith(f"20 ms per {TILE}x{TILE} tile against 60 ms for the dense network (3.0x faster; ")


def test_speed_text_wording() -> None:
    speed = {"tile": 128, "threads": 2, "ms": 12.4, "dense_ms": 99.6, "speedup": 8.03, "macs": 1_260_000_000,
             "dense_macs": 10_040_000_000, "runtime": "native onnxruntime 9.9, CPU", "measured": "2030-01-02"}
    assert speed_text(speed) == ("12 ms per 128x128 tile against 100 ms for the dense network (8.0x faster; "
                                 "1.3 against 10.0 G multiply-accumulates; native onnxruntime 9.9, CPU, 2 threads, "
                                 "at export on 2030-01-02)")
    assert ", 1 thread, " in speed_text({**speed, "threads": 1})
