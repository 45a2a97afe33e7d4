"""mirl.export.onnx_model: the ONNX graph against torch, its names and metadata, float16
weights, and ``reuse_onnx``'s checks.

Exports take seconds per network on this machine (a whole tiny PromptIR: most of a minute), so
the graphs here are small stand-ins made of PromptIR's own pieces (a transformer block with the
fast layer norm and transposed attention); tests/export/test_formats.py exports a whole ticket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
import onnx  # noqa: E402

from mirl.errors import MirlError  # noqa: E402
from mirl.export.onnx_model import (  # noqa: E402
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    export_onnx,
    inference_session,
    onnx_bytes,
    reuse_onnx,
)
from mirl.models.promptir import TransformerBlock  # noqa: E402

META = {"mirl.preset": "tiny", "mirl.level": 3}


class Block(nn.Module):
    """3 -> 8 channels, one PromptIR transformer block (2 heads, fast operations), 8 -> 3, plus the input."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 3, padding=1)
        self.block = TransformerBlock(8, 2, 2.66, False)
        self.out = nn.Conv2d(8, 3, 3, padding=1)
        for module in self.modules():
            if hasattr(module, "impl"):
                module.impl = "fast"

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(self.embed(inp_img))) + inp_img


class Conv(nn.Module):
    """One 3x3 convolution whose weights float16 cannot hold exactly (1.0002 rounds to 1.0)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0002)
            self.conv.bias.fill_(0.25)

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        return self.conv(inp_img)


@pytest.fixture(scope="module")
def block() -> tuple[nn.Module, bytes]:
    torch.manual_seed(0)
    model = Block().train()
    return model, onnx_bytes(model, metadata=META, example_size=32)


def _run(data: bytes | Path, x: torch.Tensor) -> np.ndarray:
    return inference_session(data, threads=1).run(None, {INPUT_NAME: x.numpy()})[0]


def test_graph_computes_the_network_at_any_multiple_of_8(block: tuple[nn.Module, bytes]) -> None:
    model, data = block
    for h, w in ((32, 32), (40, 56)):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            expected = model.eval()(x).numpy()
        got = _run(data, x)
        assert got.shape == expected.shape and got.dtype == np.float32
        assert float(np.abs(got - expected).max()) < 1e-4, (h, w)


def test_the_browser_graph_writes_the_norm_as_reductions_and_computes_the_same(block: tuple[nn.Module, bytes]) -> None:
    """``browser=True`` (the web page's graph): no LayerNormalization, no transposes around the
    norm, the same output; the default graph keeps onnxruntime's LayerNormalization kernel."""
    model, native = block
    web = onnx_bytes(model, metadata=META, example_size=32, browser=True)
    ops = {name: [n.op_type for n in onnx.load_from_string(data).graph.node] for name, data in (("native", native), ("web", web))}
    assert ops["native"].count("LayerNormalization") == 2 and "LayerNormalization" not in ops["web"]
    assert ops["web"].count("ReduceMean") == 4  # mean and variance, two norms per block
    assert ops["web"].count("Transpose") < ops["native"].count("Transpose")
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    assert float(np.abs(_run(web, x) - _run(native, x)).max()) < 1e-5


def test_names_dims_metadata_and_no_stack_traces(block: tuple[nn.Module, bytes]) -> None:
    _, data = block
    proto = onnx.load_from_string(data)
    assert [i.name for i in proto.graph.input] == [INPUT_NAME] and [o.name for o in proto.graph.output] == [OUTPUT_NAME]
    for value in (proto.graph.input[0], proto.graph.output[0]):
        assert [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim] == [1, 3, "height", "width"]
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == OPSET
    assert {p.key: p.value for p in proto.metadata_props} == {k: str(v) for k, v in META.items()}
    assert inference_session(data).get_modelmeta().custom_metadata_map == {k: str(v) for k, v in META.items()}
    assert all(not n.doc_string and not list(n.metadata_props) for n in proto.graph.node)
    assert "multiples of 8" in proto.doc_string


def test_export_onnx_writes_what_reuse_onnx_accepts(block: tuple[nn.Module, bytes], tmp_path: Path) -> None:
    """export_onnx writes the file and returns its size; it exports a copy, the network keeps its
    training mode and gradients; reuse_onnx reads a matching file back with its metadata."""
    model, data = block
    path = tmp_path / "conv.onnx"
    fresh = Conv().train()
    before = [p.clone() for p in fresh.parameters()]
    size = export_onnx(path, fresh, metadata={"k": "v"})
    assert size == path.stat().st_size
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props} == {"k": "v"}
    assert fresh.training and all(p.requires_grad for p in fresh.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, fresh.parameters()))
    path.write_bytes(data)
    again, meta = reuse_onnx(path, model)
    assert again == data and meta == {k: str(v) for k, v in META.items()}


@pytest.fixture(scope="module")
def half() -> tuple[nn.Module, Any]:
    """:class:`Conv` exported with float16 weights, labelled so in its metadata."""
    model = Conv().eval()
    return model, onnx.load_from_string(onnx_bytes(model, dtype="float16", example_size=16,
                                                   metadata={"mirl.dtype": "float16"}))


def test_float16_weights_are_stored_half_and_computed_in_float32(half: tuple[nn.Module, Any]) -> None:
    model, proto = half
    types = {i.name: i.data_type for i in proto.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types.values()  # the 81 weights
    assert sum(1 for t in types.values() if t == onnx.TensorProto.FLOAT) >= 1  # the 3 biases stay float32
    x = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = model(x).numpy()
        rounded = nn.functional.conv2d(x, torch.ones(3, 3, 3, 3), torch.full((3,), 0.25), padding=1).numpy()
    got = _run(proto.SerializeToString(), x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, rounded, atol=1e-5)  # the float16 weights, float32 arithmetic
    assert float(np.abs(got - exact).max()) > 1e-3  # and not the float32 weights


def test_reuse_onnx_allows_float16_rounding_only_when_the_file_says_float16(half: tuple[nn.Module, Any],
                                                                           tmp_path: Path) -> None:
    model, original = half
    labelled = tmp_path / "half.onnx"
    labelled.write_bytes(original.SerializeToString())
    assert reuse_onnx(labelled, model)[1] == {"mirl.dtype": "float16"}
    proto = onnx.ModelProto()
    proto.CopyFrom(original)
    del proto.metadata_props[:]
    unlabelled = tmp_path / "unlabelled.onnx"
    unlabelled.write_bytes(proto.SerializeToString())
    with pytest.raises(MirlError, match=rf"{unlabelled}: does not compute this ticket's function \(max difference"):
        reuse_onnx(unlabelled, model)


def _graph(input_name: str) -> bytes:
    from onnx import TensorProto, helper

    dims: list[Any] = [1, 3, "height", "width"]
    graph = helper.make_graph([helper.make_node("Identity", [input_name], [OUTPUT_NAME])], "g",
                              [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, dims)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10).SerializeToString()


def test_reuse_onnx_names_missing_damaged_and_foreign_files(tmp_path: Path) -> None:
    model = Conv().eval()
    missing = tmp_path / "missing.onnx"
    with pytest.raises(MirlError, match=rf"{missing}: cannot read the ONNX file \(No such file or directory\)"):
        reuse_onnx(missing, model)
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"\x08\x07 not a protobuf")
    with pytest.raises(MirlError, match=rf"{damaged}: not a loadable ONNX model"):
        reuse_onnx(damaged, model)
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(_graph("x"))
    with pytest.raises(MirlError, match=rf"{foreign}: does not run as a PromptIR ONNX export"):
        reuse_onnx(foreign, model)


def test_inference_session_takes_bytes_or_a_path_and_a_thread_count(tmp_path: Path) -> None:
    data = _graph(INPUT_NAME)
    path = tmp_path / "identity.onnx"
    path.write_bytes(data)
    x = np.random.default_rng(0).random((1, 3, 8, 16), dtype=np.float32)
    for source in (data, path, str(path)):
        session = inference_session(source, threads=1)
        assert session.get_session_options().intra_op_num_threads == 1
        assert np.array_equal(session.run(None, {INPUT_NAME: x})[0], x)
    assert inference_session(data).get_session_options().intra_op_num_threads == 0


def test_an_export_failure_is_one_mirl_error() -> None:
    """A network the exporter cannot take (its input is not called ``inp_img``) fails as a MirlError."""

    class Other(nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return image * 2

    with pytest.raises(MirlError, match=r"^ONNX export failed: "):
        onnx_bytes(Other(), example_size=16)
